// What tests read from image bytes that Debian's ffprobe 5.1 cannot: the
// size of a still AVIF (ffprobe names its codec, av1, but reports 0x0).

/** Width and height of an AVIF from its `ispe` (image spatial extents) box. */
export function avifSize(bytes) {
  const at = Buffer.from(bytes).indexOf('ispe');
  if (at < 0) throw new Error('not an AVIF: no ispe box');
  return { width: bytes.readUInt32BE(at + 8), height: bytes.readUInt32BE(at + 12) };
}
