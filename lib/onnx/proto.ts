/**
 * The subset of onnx.proto (public field numbers) needed to write and read ONNX models, declared
 * for protobufjs.
 * @module
 */

import protobuf from "protobufjs";

/** ONNX TensorProto.DataType values used here. */
export const DataType = {
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  INT32: 6,
  INT64: 7,
  BOOL: 9,
  FLOAT16: 10,
} as const;

/** One of the ONNX element types this package writes. */
export type DataType = typeof DataType[keyof typeof DataType];

/** Bytes per element of each supported ONNX data type. */
export const DATA_TYPE_BYTES: Readonly<Record<DataType, number>> = {
  1: 4,
  2: 1,
  3: 1,
  6: 4,
  7: 8,
  9: 1,
  10: 2,
};

/** ONNX AttributeProto.AttributeType values. */
export const AttributeType = {
  FLOAT: 1,
  INT: 2,
  STRING: 3,
  TENSOR: 4,
  FLOATS: 6,
  INTS: 7,
  STRINGS: 8,
} as const;

const rep = (type: string, id: number) => ({
  rule: "repeated",
  type,
  id,
  options: { packed: false },
});

const descriptor = {
  nested: {
    onnx: {
      nested: {
        ModelProto: {
          fields: {
            irVersion: { type: "int64", id: 1 },
            producerName: { type: "string", id: 2 },
            producerVersion: { type: "string", id: 3 },
            domain: { type: "string", id: 4 },
            modelVersion: { type: "int64", id: 5 },
            docString: { type: "string", id: 6 },
            graph: { type: "GraphProto", id: 7 },
            opsetImport: rep("OperatorSetIdProto", 8),
            metadataProps: rep("StringStringEntryProto", 14),
          },
        },
        OperatorSetIdProto: {
          fields: { domain: { type: "string", id: 1 }, version: { type: "int64", id: 2 } },
        },
        StringStringEntryProto: {
          fields: { key: { type: "string", id: 1 }, value: { type: "string", id: 2 } },
        },
        GraphProto: {
          fields: {
            node: rep("NodeProto", 1),
            name: { type: "string", id: 2 },
            initializer: rep("TensorProto", 5),
            docString: { type: "string", id: 10 },
            input: rep("ValueInfoProto", 11),
            output: rep("ValueInfoProto", 12),
            valueInfo: rep("ValueInfoProto", 13),
          },
        },
        NodeProto: {
          fields: {
            input: rep("string", 1),
            output: rep("string", 2),
            name: { type: "string", id: 3 },
            opType: { type: "string", id: 4 },
            attribute: rep("AttributeProto", 5),
            docString: { type: "string", id: 6 },
            domain: { type: "string", id: 7 },
          },
        },
        AttributeProto: {
          fields: {
            name: { type: "string", id: 1 },
            f: { type: "float", id: 2 },
            i: { type: "int64", id: 3 },
            s: { type: "bytes", id: 4 },
            t: { type: "TensorProto", id: 5 },
            floats: rep("float", 7),
            ints: rep("int64", 8),
            strings: rep("bytes", 9),
            type: { type: "int32", id: 20 },
          },
        },
        TensorProto: {
          fields: {
            dims: rep("int64", 1),
            dataType: { type: "int32", id: 2 },
            floatData: { rule: "repeated", type: "float", id: 4, options: { packed: true } },
            int32Data: { rule: "repeated", type: "int32", id: 5, options: { packed: true } },
            int64Data: { rule: "repeated", type: "int64", id: 7, options: { packed: true } },
            name: { type: "string", id: 8 },
            rawData: { type: "bytes", id: 9 },
            externalData: rep("StringStringEntryProto", 13),
            dataLocation: { type: "int32", id: 14 },
          },
        },
        ValueInfoProto: {
          fields: { name: { type: "string", id: 1 }, type: { type: "TypeProto", id: 2 } },
        },
        TypeProto: {
          fields: { tensorType: { type: "TypeProtoTensor", id: 1 } },
        },
        TypeProtoTensor: {
          fields: {
            elemType: { type: "int32", id: 1 },
            shape: { type: "TensorShapeProto", id: 2 },
          },
        },
        TensorShapeProto: {
          fields: { dim: rep("Dimension", 1) },
        },
        Dimension: {
          oneofs: { value: { oneof: ["dimValue", "dimParam"] } },
          fields: { dimValue: { type: "int64", id: 1 }, dimParam: { type: "string", id: 2 } },
        },
      },
    },
  },
};

const root = protobuf.Root.fromJSON(descriptor);

/** protobufjs message types of the declared ONNX messages. */
export const onnx = {
  ModelProto: root.lookupType("onnx.ModelProto"),
  GraphProto: root.lookupType("onnx.GraphProto"),
  NodeProto: root.lookupType("onnx.NodeProto"),
  TensorProto: root.lookupType("onnx.TensorProto"),
  ValueInfoProto: root.lookupType("onnx.ValueInfoProto"),
  OperatorSetIdProto: root.lookupType("onnx.OperatorSetIdProto"),
} as const;

/** Encodes a protobuf varint (non-negative, below 2^53). */
export function varint(value: number): Uint8Array {
  const out: number[] = [];
  let v = value;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return Uint8Array.from(out);
}

/** The tag bytes of a length-delimited field `field`. */
export function lengthDelimitedTag(field: number): Uint8Array {
  return varint(field * 8 + 2);
}
