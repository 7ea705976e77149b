/** An 8-bit RGBA raster, row-major, no padding: the image type every stage exchanges. */
export interface RgbaImage {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8ClampedArray;
}

export function createImage(width: number, height: number): RgbaImage {
  return { width, height, data: new Uint8ClampedArray(width * height * 4) };
}

/** True when any pixel is not fully opaque: the image carries a real matte. */
export function hasTransparency(image: RgbaImage): boolean {
  const { data } = image;
  for (let i = 3; i < data.length; i += 4) if (data[i] < 255) return true;
  return false;
}

/** Views side by side, ceil(sqrt(n)) per row. */
export function gridImage(images: RgbaImage[]): RgbaImage {
  const { width, height } = images[0];
  const cols = Math.ceil(Math.sqrt(images.length));
  const rows = Math.ceil(images.length / cols);
  const out = createImage(width * cols, height * rows);
  out.data.fill(255);
  images.forEach((image, i) => {
    const ox = (i % cols) * width,
      oy = Math.floor(i / cols) * height;
    for (let y = 0; y < height; y++) {
      out.data.set(image.data.subarray(y * width * 4, (y + 1) * width * 4), ((oy + y) * out.width + ox) * 4);
    }
  });
  return out;
}
