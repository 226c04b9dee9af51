#!/usr/bin/env node
// Runs a TF.js graph model with TensorFlow.js's pure-JavaScript CPU backend and writes
// the values of chosen nodes: the reference facelin's PyTorch port is checked against.
//
//   node tools/tfjs_reference.js --modules DIR --model MODEL.json --input INPUT.bin \
//        --shape N,H,W,C --nodes NODE[,NODE...] --out OUT.json
//
// DIR holds node_modules with @tensorflow/tfjs-core, -converter and -backend-cpu (no
// native add-on). INPUT.bin is the input batch as little-endian float32 in NHWC order.
// OUT.json maps each node to {"shape": [...], "values": base64 little-endian float32}
// and records the TF.js version and backend.
'use strict';
const fs = require('fs');
const path = require('path');
const { createRequire } = require('module');

function parseArgs(argv) {
  const args = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || i + 1 >= argv.length) {
      throw new Error(`bad argument ${argv[i]}; see the usage at the top of this file`);
    }
    args[argv[i].slice(2)] = argv[i + 1];
  }
  for (const key of ['modules', 'model', 'input', 'shape', 'nodes', 'out']) {
    if (!(key in args)) throw new Error(`missing --${key}`);
  }
  return args;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const load = createRequire(path.join(path.resolve(args.modules), 'package.json'));
  const tf = load('@tensorflow/tfjs-core');
  load('@tensorflow/tfjs-backend-cpu');
  const converter = load('@tensorflow/tfjs-converter');
  await tf.setBackend('cpu');

  const modelPath = path.resolve(args.model);
  const graph = JSON.parse(fs.readFileSync(modelPath, 'utf8'));
  const specs = [];
  const buffers = [];
  for (const group of graph.weightsManifest) {
    specs.push(...group.weights);
    for (const file of group.paths) {
      buffers.push(fs.readFileSync(path.join(path.dirname(modelPath), file)));
    }
  }
  const all = Buffer.concat(buffers);
  const artifacts = {
    modelTopology: graph.modelTopology,
    weightSpecs: specs,
    weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength),
    format: graph.format,
    generatedBy: graph.generatedBy,
    convertedBy: graph.convertedBy,
    signature: graph.signature,
    userDefinedMetadata: graph.userDefinedMetadata,
  };
  const model = await converter.loadGraphModel({ load: async () => artifacts });

  const shape = args.shape.split(',').map(Number);
  const raw = fs.readFileSync(args.input);
  const data = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
  if (data.length !== shape.reduce((a, b) => a * b, 1)) {
    throw new Error(`${args.input}: ${data.length} values, shape ${shape}`);
  }
  const input = tf.tensor(data, shape, 'float32');
  const nodes = args.nodes.split(',');
  const inputName = model.inputs[0].name;
  let outputs = model.execute({ [inputName]: input }, nodes);
  if (!Array.isArray(outputs)) outputs = [outputs];

  const result = {
    tfjs: tf.version_core, backend: tf.getBackend(), model: path.basename(modelPath),
    input_shape: shape, nodes: {},
  };
  nodes.forEach((node, i) => {
    const values = Buffer.from(outputs[i].dataSync().buffer);
    result.nodes[node] = { shape: outputs[i].shape, values: values.toString('base64') };
  });
  fs.writeFileSync(args.out, JSON.stringify(result));
}

main().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
