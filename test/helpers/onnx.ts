/**
 * Writes small ONNX models as protobuf bytes, for tests that need a real graph onnxruntime can load without
 * downloading any weights. Covers the few message fields the test graphs use (onnx.proto3 field numbers).
 */

/** ONNX TensorProto data types used here. */
export const FLOAT = 1;
export const INT64 = 7;

export interface OnnxNode {
  op: string;
  inputs: string[];
  outputs: string[];
  /** Integer and integer-list attributes (e.g. axes, keepdims). */
  attributes?: Record<string, number | number[]>;
}

export interface OnnxValue {
  name: string;
  type: number;
  /** Fixed sizes, or a symbolic name for a dynamic axis. */
  dims: (number | string)[];
}

export interface OnnxInitializer {
  name: string;
  dims: number[];
  values: Float32Array;
}

export interface OnnxGraph {
  nodes: OnnxNode[];
  inputs: OnnxValue[];
  outputs: OnnxValue[];
  initializers?: OnnxInitializer[];
  opset?: number;
}

/** Serialises a graph into an ONNX ModelProto. */
export function onnxModel(graph: OnnxGraph): Uint8Array {
  const g = new Proto();
  graph.nodes.forEach((node, i) => g.message(1, nodeProto(node, i)));
  g.string(2, 'test_graph');
  for (const init of graph.initializers ?? []) g.message(5, tensorProto(init));
  for (const value of graph.inputs) g.message(11, valueInfo(value));
  for (const value of graph.outputs) g.message(12, valueInfo(value));

  const model = new Proto();
  model.varint(1, 8); // ir_version
  model.string(2, 'fast3d-tests');
  model.message(7, g);
  model.message(8, new Proto().string(1, '').varint(2, graph.opset ?? 13));
  return model.bytes();
}

function nodeProto(node: OnnxNode, index: number): Proto {
  const p = new Proto();
  for (const name of node.inputs) p.string(1, name);
  for (const name of node.outputs) p.string(2, name);
  p.string(3, `${node.op.toLowerCase()}_${index}`);
  p.string(4, node.op);
  for (const [name, value] of Object.entries(node.attributes ?? {})) {
    const a = new Proto().string(1, name);
    if (Array.isArray(value)) {
      for (const v of value) a.varint(8, v);
      a.varint(20, 7); // INTS
    } else {
      a.varint(3, value);
      a.varint(20, 2); // INT
    }
    p.message(5, a);
  }
  return p;
}

function tensorProto(init: OnnxInitializer): Proto {
  const p = new Proto();
  for (const d of init.dims) p.varint(1, d);
  p.varint(2, FLOAT);
  p.string(8, init.name);
  p.bytesField(9, new Uint8Array(init.values.buffer, init.values.byteOffset, init.values.byteLength));
  return p;
}

function valueInfo(value: OnnxValue): Proto {
  const shape = new Proto();
  for (const d of value.dims) shape.message(1, typeof d === 'number' ? new Proto().varint(1, d) : new Proto().string(2, d));
  const tensorType = new Proto().varint(1, value.type).message(2, shape);
  return new Proto().string(1, value.name).message(2, new Proto().message(1, tensorType));
}

/** A protobuf message under construction: fields appended in order as wire-format bytes. */
class Proto {
  /** Finished parts; large byte fields (weights) are kept whole rather than copied byte by byte. */
  private readonly parts: Uint8Array[] = [];
  private small: number[] = [];

  varint(field: number, value: number): this {
    this.key(field, 0);
    this.raw(value);
    return this;
  }

  string(field: number, value: string): this {
    return this.bytesField(field, new TextEncoder().encode(value));
  }

  bytesField(field: number, value: Uint8Array): this {
    this.key(field, 2);
    this.raw(value.length);
    this.flush();
    this.parts.push(value);
    return this;
  }

  message(field: number, value: Proto): this {
    return this.bytesField(field, value.bytes());
  }

  bytes(): Uint8Array {
    this.flush();
    const out = new Uint8Array(this.parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const part of this.parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }

  private flush(): void {
    if (this.small.length) this.parts.push(Uint8Array.from(this.small));
    this.small = [];
  }

  private key(field: number, wireType: number): void {
    this.raw(field * 8 + wireType);
  }

  private raw(value: number): void {
    // Non-negative values only (sizes, ids, enums): 7 bits per byte, low bits first.
    let v = value;
    while (v >= 0x80) {
      this.small.push((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    this.small.push(v);
  }
}
