// crc-wasm benchmark: GB/s of every CRC backend at 100 B … 1 MiB (ratio to zlib.crc32 measured in
// the same run), the sampled stride-8 CRC, and record encode+decode against msgpackr.
import { crc32 as zlibCrc32 } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import CRC32 from 'crc-32';
import { Packr } from 'msgpackr';
import {
  crc32,
  crc32Js,
  crc32Wasm,
  crc32WasmWindow,
  wasmWindow,
  encodeRecord,
  decodeRecord,
  encodeRecordJs,
  decodeRecordJs,
  encodeRecordWasm,
  decodeRecordWasm,
} from '../dist/index.js';
import { opsPerSec, report } from '../../../scripts/bench-harness.mjs';

const rows = [];
const sizes = [
  ['100 B', 100],
  ['256 B', 256],
  ['512 B', 512],
  ['1 KiB', 1024],
  ['2 KiB', 2048],
  ['4 KiB', 4096],
  ['64 KiB', 65536],
  ['1 MiB', 1 << 20],
];
let sink = 0;

for (const [label, size] of sizes) {
  const data = randomBytes(size);
  const gbps = (fn) => (opsPerSec(fn) * size) / 1e9;
  const zlib = gbps(() => (sink ^= zlibCrc32(data, 0)));
  const add = (name, value) =>
    rows.push({
      name: `${name} @ ${label}`,
      value,
      unit: 'GB/s',
      ratio: value / zlib,
      baseline: 'zlib.crc32',
    });
  add('zlib.crc32', zlib);
  add(
    'crc32 (dispatch)',
    gbps(() => (sink ^= crc32(data))),
  );
  add(
    'WASM incl. copy',
    gbps(() => (sink ^= crc32Wasm(data))),
  );
  if (size <= 1 << 20) {
    wasmWindow(size).set(data);
    add(
      'WASM in memory',
      gbps(() => (sink ^= crc32WasmWindow(size))),
    );
  }
  add(
    'JS twin',
    gbps(() => (sink ^= crc32Js(data))),
  );
  add(
    'npm crc-32',
    gbps(() => (sink ^= CRC32.buf(data, 0))),
  );
}

// Sampled CRC (PhxPaxos's every-8th-byte checksum of values): GB/s of input covered.
for (const [label, size] of [
  ['100 B', 100],
  ['64 KiB', 65536],
  ['1 MiB', 1 << 20],
]) {
  const data = randomBytes(size);
  const zlib = (opsPerSec(() => (sink ^= zlibCrc32(data, 0))) * size) / 1e9;
  const add = (name, fn) => {
    const value = (opsPerSec(fn) * size) / 1e9;
    rows.push({
      name: `${name} @ ${label}`,
      value,
      unit: 'GB/s',
      ratio: value / zlib,
      baseline: 'zlib.crc32 stride 1',
    });
  };
  add('stride 8 crc32 (dispatch)', () => (sink ^= crc32(data, 0, { stride: 8 })));
  add('stride 8 WASM', () => (sink ^= crc32Wasm(data, 0, { stride: 8 })));
  add('stride 8 JS twin', () => (sink ^= crc32Js(data, 0, { stride: 8 })));
}

// Record encode + decode vs msgpackr (shared structures: its fastest mode) on the same object.
const packr = new Packr({ useRecords: true, structures: [] });
for (const [label, size] of [
  ['100 B', 100],
  ['100 KiB', 100 * 1024],
]) {
  const record = {
    instanceId: 123456789,
    promiseId: 42,
    promiseNodeId: 3,
    acceptedId: 42,
    acceptedNodeId: 3,
    value: randomBytes(size),
    checksum: 0xdeadbeef,
  };
  const msgpackr = opsPerSec(() => (sink ^= packr.unpack(packr.pack(record)).checksum));
  const add = (name, enc, dec) => {
    const value = opsPerSec(() => (sink ^= dec(enc(record)).checksum));
    rows.push({
      name: `${name} @ ${label}`,
      value,
      unit: 'records/s',
      ratio: value / msgpackr,
      baseline: 'msgpackr',
    });
  };
  rows.push({
    name: `msgpackr pack+unpack @ ${label}`,
    value: msgpackr,
    unit: 'records/s',
    ratio: 1,
    baseline: 'msgpackr',
  });
  add('record codec (dispatch)', encodeRecord, decodeRecord);
  add('record codec WASM', encodeRecordWasm, decodeRecordWasm);
  add('record codec JS twin', encodeRecordJs, decodeRecordJs);
}

report('crc-wasm', rows);
if (sink === 0.5) console.log(sink);
