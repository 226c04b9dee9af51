"""Face CNNs in PyTorch, with their weights read from the original files."""
from .dlib_format import DlibFormatError, read_dlib_network
from .dlib_resnet import DlibResNet, dlib_reference_descriptors, load_dlib_resnet
from .networks import NETWORK_NAMES, FaceNetwork, load_network, mirror_identification
from .npm import NpmError, human_model_path
from .tfjs import TFJSFormatError, TFJSGraph, read_tfjs_graph, tfjs_reference

__all__ = ["DlibFormatError", "DlibResNet", "dlib_reference_descriptors", "load_dlib_resnet",
           "read_dlib_network", "NETWORK_NAMES", "FaceNetwork", "load_network",
           "mirror_identification", "NpmError",
           "human_model_path", "TFJSFormatError", "TFJSGraph", "read_tfjs_graph",
           "tfjs_reference"]
