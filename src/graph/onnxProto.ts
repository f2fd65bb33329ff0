/**
 * ONNX protobuf messages, encoded and decoded by protobufjs. The schema below is the subset of onnx.proto
 * (field numbers as in onnx/onnx.proto, IR version 10) that decoder graphs use. It is inlined rather than taken
 * from the npm package `onnx-proto`, whose schema is pinned to ONNX 1.10 and unmaintained; protobufjs itself
 * does the wire format.
 */
import protobuf from 'protobufjs';

const SCHEMA = `
syntax = "proto3";
package onnx;
message AttributeProto {
  enum AttributeType { UNDEFINED = 0; FLOAT = 1; INT = 2; STRING = 3; TENSOR = 4; GRAPH = 5;
    FLOATS = 6; INTS = 7; STRINGS = 8; TENSORS = 9; GRAPHS = 10; }
  string name = 1; string ref_attr_name = 21; string doc_string = 13; AttributeType type = 20;
  float f = 2; int64 i = 3; bytes s = 4; TensorProto t = 5; GraphProto g = 6;
  repeated float floats = 7; repeated int64 ints = 8; repeated bytes strings = 9;
  repeated TensorProto tensors = 10; repeated GraphProto graphs = 11;
}
message ValueInfoProto { string name = 1; TypeProto type = 2; string doc_string = 3; }
message NodeProto {
  repeated string input = 1; repeated string output = 2; string name = 3; string op_type = 4;
  string domain = 7; repeated AttributeProto attribute = 5; string doc_string = 6;
}
message StringStringEntryProto { string key = 1; string value = 2; }
message OperatorSetIdProto { string domain = 1; int64 version = 2; }
message ModelProto {
  int64 ir_version = 1; repeated OperatorSetIdProto opset_import = 8; string producer_name = 2;
  string producer_version = 3; string domain = 4; int64 model_version = 5; string doc_string = 6;
  GraphProto graph = 7; repeated StringStringEntryProto metadata_props = 14;
}
message GraphProto {
  repeated NodeProto node = 1; string name = 2; repeated TensorProto initializer = 5; string doc_string = 10;
  repeated ValueInfoProto input = 11; repeated ValueInfoProto output = 12; repeated ValueInfoProto value_info = 13;
}
message TensorProto {
  enum DataLocation { DEFAULT = 0; EXTERNAL = 1; }
  repeated int64 dims = 1; int32 data_type = 2; repeated float float_data = 4; repeated int32 int32_data = 5;
  repeated bytes string_data = 6; repeated int64 int64_data = 7; string name = 8; string doc_string = 12;
  bytes raw_data = 9; repeated StringStringEntryProto external_data = 13; DataLocation data_location = 14;
  repeated double double_data = 10; repeated uint64 uint64_data = 11;
}
message TensorShapeProto {
  message Dimension { oneof value { int64 dim_value = 1; string dim_param = 2; } string denotation = 3; }
  repeated Dimension dim = 1;
}
message TypeProto {
  message Tensor { int32 elem_type = 1; TensorShapeProto shape = 2; }
  oneof value { Tensor tensor_type = 1; }
  string denotation = 6;
}
`;

const root = protobuf.parse(SCHEMA, { keepCase: true }).root;
export const ModelProto = root.lookupType('onnx.ModelProto');

/** ONNX TensorProto.DataType values used here. */
export const ONNX_DTYPE = {
  float32: 1,
  uint8: 2,
  int8: 3,
  int32: 6,
  int64: 7,
  bool: 9,
  float16: 10,
  bfloat16: 16,
} as const;
export type OnnxDType = keyof typeof ONNX_DTYPE;

export function encodeModel(model: object): Uint8Array {
  const err = ModelProto.verify(model);
  if (err) throw new Error(`internal: invalid ONNX model message: ${err}`);
  return ModelProto.encode(ModelProto.fromObject(model)).finish();
}

export function decodeModel(bytes: Uint8Array): Record<string, any> {
  return ModelProto.toObject(ModelProto.decode(bytes), { longs: Number, bytes: Buffer, defaults: false });
}
