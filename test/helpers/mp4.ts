/** A minimal ISO-BMFF reader for tests: the boxes and fields that say whether an MP4 is what we promise. */

export interface Box {
  type: string;
  start: number;
  /** Offset of the payload (after the header). */
  body: number;
  end: number;
}

const CONTAINERS = new Set(['moov', 'trak', 'mdia', 'minf', 'stbl', 'edts', 'dinf', 'udta']);

export function readBoxes(bytes: Uint8Array, start = 0, end = bytes.length): Box[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const boxes: Box[] = [];
  let offset = start;
  while (offset + 8 <= end) {
    let size = view.getUint32(offset);
    const type = String.fromCharCode(...bytes.subarray(offset + 4, offset + 8));
    let body = offset + 8;
    if (size === 1) {
      size = Number(view.getBigUint64(offset + 8));
      body += 8;
    }
    if (size === 0) size = end - offset;
    if (size < 8 || offset + size > end) throw new Error(`box ${type} at ${offset} overruns its parent`);
    boxes.push({ type, start: offset, body, end: offset + size });
    offset += size;
  }
  return boxes;
}

/** The first box along a path such as moov/trak/mdia/mdhd. */
export function findBox(bytes: Uint8Array, path: string): Box | undefined {
  let boxes = readBoxes(bytes);
  let found: Box | undefined;
  for (const type of path.split('/')) {
    found = boxes.find((b) => b.type === type);
    if (!found) return undefined;
    if (CONTAINERS.has(type)) boxes = readBoxes(bytes, found.body, found.end);
  }
  return found;
}

export interface Mp4Summary {
  topLevel: string[];
  codec: string;
  width: number;
  height: number;
  /** chroma_format_idc from the SPS: 1 = 4:2:0. */
  chromaFormat: number;
  profile: number;
  samples: number;
  durationSeconds: number;
}

export function summariseMp4(bytes: Uint8Array): Mp4Summary {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const topLevel = readBoxes(bytes).map((b) => b.type);
  const stsd = need(findBox(bytes, 'moov/trak/mdia/minf/stbl/stsd'), 'stsd');
  // stsd: version/flags(4) entry_count(4), then the sample entry box.
  const entry = readBoxes(bytes, stsd.body + 8, stsd.end)[0];
  // VisualSampleEntry: 6 reserved + 2 data_reference_index + 16 pre-defined/reserved, then width, height.
  const width = view.getUint16(entry.body + 24);
  const height = view.getUint16(entry.body + 26);
  const avcC = need(
    readBoxes(bytes, entry.body + 78, entry.end).find((b) => b.type === 'avcC'),
    'avcC',
  );
  const profile = bytes[avcC.body + 1];
  const spsLength = view.getUint16(avcC.body + 6);
  const sps = bytes.subarray(avcC.body + 8, avcC.body + 8 + spsLength);
  const chromaFormat = spsChromaFormat(sps);
  const stsz = need(findBox(bytes, 'moov/trak/mdia/minf/stbl/stsz'), 'stsz');
  const samples = view.getUint32(stsz.body + 8);
  const mdhd = need(findBox(bytes, 'moov/trak/mdia/mdhd'), 'mdhd');
  const v1 = bytes[mdhd.body] === 1;
  const timescale = view.getUint32(mdhd.body + (v1 ? 20 : 12));
  const duration = v1 ? Number(view.getBigUint64(mdhd.body + 24)) : view.getUint32(mdhd.body + 16);
  return { topLevel, codec: entry.type, width, height, chromaFormat, profile, samples, durationSeconds: duration / timescale };
}

function need<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`MP4 has no ${what} box`);
  return value;
}

/** chroma_format_idc of an H.264 SPS NAL unit (implicitly 1 for profiles without the field). */
function spsChromaFormat(nal: Uint8Array): number {
  // Drop emulation-prevention bytes (00 00 03).
  const rbsp: number[] = [];
  for (let i = 1; i < nal.length; i++) {
    if (i >= 3 && nal[i] === 3 && nal[i - 1] === 0 && nal[i - 2] === 0) continue;
    rbsp.push(nal[i]);
  }
  let bit = 0;
  const read = () => (rbsp[bit >> 3] >> (7 - (bit++ & 7))) & 1;
  const bits = (n: number) => {
    let v = 0;
    for (let i = 0; i < n; i++) v = (v << 1) | read();
    return v;
  };
  const ue = () => {
    let zeros = 0;
    while (read() === 0) zeros++;
    return (1 << zeros) - 1 + bits(zeros);
  };
  const profile = bits(8);
  bits(16); // constraint flags + level
  ue(); // seq_parameter_set_id
  if ([100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135].includes(profile)) return ue();
  return 1;
}
