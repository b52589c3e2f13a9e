export { CodecError, type CodecErrorCode } from './errors';
export {
  crc32,
  crc32Wasm,
  crc32WasmWindow,
  wasmWindow,
  chainChecksum,
  zlibCrc32,
  ZLIB_MIN_BYTES,
  STRIDE_WASM_MIN_BYTES,
} from './crc';
export { crc32Js } from './crc-js';
export { crc32Combine, rememberCrc, knownCrc, KNOWN_CRC_MIN_BYTES } from './combine';
export { allocBytes, SLAB_MAX_ALLOC_BYTES } from './alloc';
export { isWasmLoaded } from './wasm';
export {
  type AcceptorRecord,
  encodeRecord,
  decodeRecord,
  encodeRecordJs,
  decodeRecordJs,
  encodeRecordWasm,
  encodeRecordsInWindow,
  decodeRecordWasm,
  RECORD_VERSION,
  RECORD_HEADER_BYTES,
  RECORD_TRAILER_BYTES,
  ENCODED_RECORD_OVERHEAD_BYTES,
  RECORD_MAX_VALUE_BYTES,
  WASM_RECORD_MAX_BYTES,
} from './record';
export { type OptionRange, describeRange, rangeProblem, optionsProblem } from './options';
