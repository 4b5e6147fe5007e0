// A PNG's pixels exactly as stored. A canvas keeps premultiplied colours, so the colour under
// a fully transparent pixel (the masked part of a picture whose mask is its alpha, as LoadImage
// reads it) reads back black; the mask editor decodes the file itself to show that colour.
// 8-bit, non-interlaced grey, grey+alpha, RGB and RGBA: what Pillow and the mask upload
// write. Anything else answers null (the caller draws the image the usual way).

const CHANNELS = { 0: 1, 2: 3, 4: 2, 6: 4 };

function paeth(a, b, c) {
  const p = a + b - c;
  const pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
  if (pa <= pb && pa <= pc) return a;
  return pb <= pc ? b : c;
}

/** Undo the per-row filters in place; rows are `stride` bytes after one filter byte each. */
function unfilter(raw, height, stride, bpp) {
  const out = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const src = y * (stride + 1) + 1;
    const row = y * stride;
    const up = row - stride;
    for (let x = 0; x < stride; x++) {
      const v = raw[src + x];
      const a = x >= bpp ? out[row + x - bpp] : 0;
      const b = y > 0 ? out[up + x] : 0;
      const c = x >= bpp && y > 0 ? out[up + x - bpp] : 0;
      let r;
      if (filter === 0) r = v;
      else if (filter === 1) r = v + a;
      else if (filter === 2) r = v + b;
      else if (filter === 3) r = v + ((a + b) >> 1);
      else if (filter === 4) r = v + paeth(a, b, c);
      else throw new Error(`bad PNG filter ${filter}`);
      out[row + x] = r & 255;
    }
  }
  return out;
}

function readChunks(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const head = { width: 0, height: 0, depth: 0, colorType: -1, interlace: 0 };
  const idat = [];
  let pos = 8;
  while (pos + 8 <= bytes.length) {
    const len = view.getUint32(pos);
    const type = String.fromCharCode(...bytes.subarray(pos + 4, pos + 8));
    const data = bytes.subarray(pos + 8, pos + 8 + len);
    if (type === "IHDR") {
      head.width = view.getUint32(pos + 8);
      head.height = view.getUint32(pos + 12);
      head.depth = data[8];
      head.colorType = data[9];
      head.interlace = data[12];
    } else if (type === "IDAT") idat.push(data);
    else if (type === "IEND") break;
    pos += 12 + len;
  }
  return { head, idat };
}

/** {width, height, data: RGBA Uint8ClampedArray} of a PNG, or null when it is not one this reads. */
export async function decodePng(buffer) {
  const bytes = new Uint8Array(buffer);
  const signature = [137, 80, 78, 71, 13, 10, 26, 10];
  if (bytes.length < 8 || signature.some((b, i) => bytes[i] !== b)) return null;
  const { head, idat } = readChunks(bytes);
  const channels = CHANNELS[head.colorType];
  if (head.depth !== 8 || head.interlace !== 0 || !channels || !idat.length || !head.width || !head.height) return null;
  const stream = new Blob(idat).stream().pipeThrough(new DecompressionStream("deflate"));
  const raw = new Uint8Array(await new Response(stream).arrayBuffer());
  const stride = head.width * channels;
  if (raw.length < head.height * (stride + 1)) return null;
  const px = unfilter(raw, head.height, stride, channels);
  const data = new Uint8ClampedArray(head.width * head.height * 4);
  for (let i = 0, j = 0; i < data.length; i += 4, j += channels) {
    const grey = channels <= 2;
    data[i] = px[j];
    data[i + 1] = grey ? px[j] : px[j + 1];
    data[i + 2] = grey ? px[j] : px[j + 2];
    data[i + 3] = channels === 4 ? px[j + 3] : channels === 2 ? px[j + 1] : 255;
  }
  return { width: head.width, height: head.height, data };
}
