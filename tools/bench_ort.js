#!/usr/bin/env node
// The ONNX Runtime side of negcut-bench infer --ort: the generator exported
// by tools/export_onnx.py, run by onnxruntime-node (CPU, MLAS) in its own
// process, one untimed run first. Prints "times <s> ... rss_kib <n>" as
// bench_torch.py does. onnxruntime-node comes from tools/ort:
//   (cd tools/ort && npm install --ignore-scripts)
//   bench_ort.js --model M.onnx --size 256 --reps K --threads T
'use strict';
const path = require('path');

function args() {
  const a = {model: null, size: 256, reps: 3, threads: 2};
  for (let i = 2; i < process.argv.length; i += 2) {
    const k = process.argv[i].replace(/^--/, ''), v = process.argv[i + 1];
    if (!(k in a) || v === undefined) throw new Error('bench_ort.js: bad option ' + process.argv[i]);
    a[k] = k === 'model' ? v : parseInt(v, 10);
  }
  if (!a.model) throw new Error('bench_ort.js: --model is required');
  return a;
}

async function main() {
  const a = args();
  let ort;
  try {
    ort = require(require.resolve('onnxruntime-node', {paths: [path.join(__dirname, 'ort')]}));
  } catch (e) {
    throw new Error('bench_ort.js: onnxruntime-node is missing: (cd tools/ort && npm install --ignore-scripts)');
  }
  const session = await ort.InferenceSession.create(a.model, {
    intraOpNumThreads: a.threads, interOpNumThreads: 1, graphOptimizationLevel: 'all'});
  const n = 3 * a.size * a.size, x = new Float32Array(n);
  let seed = 1;
  for (let i = 0; i < n; i++) { // the same generator as negcut-bench's random_image
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    x[i] = (seed >>> 8) / 8388608 - 1;
  }
  const input = new ort.Tensor('float32', x, [1, 3, a.size, a.size]);
  const times = [];
  for (let i = 0; i <= a.reps; i++) {
    const t0 = process.hrtime.bigint();
    await session.run({x: input});
    if (i) times.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  console.log('times ' + times.map((t) => t.toFixed(6)).join(' ') + ' rss_kib ' +
              process.resourceUsage().maxRSS);
}

main().catch((e) => { console.error(e.message); process.exit(1); });
