"""Face CNNs in PyTorch, with their weights read from the original files.

Modules: `networks` (the face networks studied, `load_network`: (N, 3, S, S) RGB chips,
0..255 -> (N, D) descriptors), `dlib_resnet` and `dlib_format` (dlib's ResNet and its
file format), `tfjs` and `tfjs_ops` (TF.js graph models and their ops), `npm` (the
model files and TensorFlow.js, fetched with npm) and `checks` (agreement with the
reference implementations, mirror identification).
"""
from .dlib_format import DlibFormatError, read_dlib_network
from .dlib_resnet import DlibResNet, dlib_reference_descriptors, load_dlib_resnet
from .networks import NETWORK_NAMES, FaceNetwork, load_network, mirror_identification
from .npm import NpmError, human_model_path
from .tfjs import TFJSFormatError, TFJSGraph, read_tfjs_graph, tfjs_reference

__all__ = ["DlibFormatError", "DlibResNet", "dlib_reference_descriptors",
           "load_dlib_resnet", "read_dlib_network", "NETWORK_NAMES", "FaceNetwork",
           "load_network", "mirror_identification", "NpmError", "human_model_path",
           "TFJSFormatError", "TFJSGraph", "read_tfjs_graph", "tfjs_reference"]
