/**
 * Writes public/favicon.ico, the demo's icon for browsers that ask for /favicon.ico whatever the
 * page links: the lock of public/favicon.svg drawn at 32x32 (4x4 samples per pixel) into a PNG,
 * wrapped in an ICO. No image library: the shapes are a few distance tests.
 *
 *   npx tsx scripts/favicon.ts
 */
import { writeFileSync } from 'node:fs'
import { deflateSync } from 'node:zlib'

const SIZE = 32
const SAMPLES = 4
const BLUE = [0x0b, 0x5f, 0xff]
const WHITE = [0xff, 0xff, 0xff]

// Same geometry as favicon.svg (viewBox 0 0 32 32).
function roundedRect(
  x: number,
  y: number,
  left: number,
  top: number,
  w: number,
  h: number,
  r: number
) {
  const dx = Math.max(left + r - x, 0, x - (left + w - r))
  const dy = Math.max(top + r - y, 0, y - (top + h - r))
  return x >= left && x <= left + w && y >= top && y <= top + h && dx * dx + dy * dy <= r * r
}
function shackle(x: number, y: number) {
  // An arc of radius 4.5 around (16, 11.5) and two legs down to y = 14.5, 2.5 wide.
  const half = 1.25
  if (y >= 11.5 && y <= 14.5) return Math.abs(Math.abs(x - 16) - 4.5) <= half
  if (y < 11.5) return Math.abs(Math.hypot(x - 16, y - 11.5) - 4.5) <= half
  return false
}
function colourAt(x: number, y: number): number[] | undefined {
  if (!roundedRect(x, y, 0, 0, 32, 32, 8)) return undefined
  if (Math.hypot(x - 16, y - 20) <= 2.25) return BLUE
  if (roundedRect(x, y, 8, 14, 16, 12, 3) || shackle(x, y)) return WHITE
  return BLUE
}

const rows: Buffer[] = []
for (let py = 0; py < SIZE; py++) {
  const row = Buffer.alloc(1 + SIZE * 4) // filter byte 0, then RGBA
  for (let px = 0; px < SIZE; px++) {
    const sum = [0, 0, 0, 0]
    for (let sy = 0; sy < SAMPLES; sy++) {
      for (let sx = 0; sx < SAMPLES; sx++) {
        const colour = colourAt(px + (sx + 0.5) / SAMPLES, py + (sy + 0.5) / SAMPLES)
        if (!colour) continue
        for (let i = 0; i < 3; i++) sum[i]! += colour[i]!
        sum[3]!++
      }
    }
    const covered = sum[3]!
    const offset = 1 + px * 4
    for (let i = 0; i < 3; i++) row[offset + i] = covered ? Math.round(sum[i]! / covered) : 0
    row[offset + 3] = Math.round((covered / (SAMPLES * SAMPLES)) * 255)
  }
  rows.push(row)
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
  return c >>> 0
})
function crc32(data: Buffer): number {
  let c = 0xffffffff
  for (const byte of data) c = CRC_TABLE[(c ^ byte) & 0xff]! ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}
function chunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8)
  head.writeUInt32BE(data.length, 0)
  head.write(type, 4, 'latin1')
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0)
  return Buffer.concat([head, data, crc])
}

const ihdr = Buffer.alloc(13)
ihdr.writeUInt32BE(SIZE, 0)
ihdr.writeUInt32BE(SIZE, 4)
ihdr.set([8, 6, 0, 0, 0], 8) // 8 bits per channel, RGBA, deflate, no filter set, no interlace
const png = Buffer.concat([
  Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
  chunk('IHDR', ihdr),
  chunk('IDAT', deflateSync(Buffer.concat(rows), { level: 9 })),
  chunk('IEND', Buffer.alloc(0)),
])

// ICONDIR (6 bytes) and one ICONDIRENTRY (16 bytes), then the PNG (allowed in ICO since Vista).
const ico = Buffer.alloc(22)
ico.writeUInt16LE(1, 2) // type: icon
ico.writeUInt16LE(1, 4) // one image
ico.set([SIZE, SIZE, 0, 0], 6) // width, height, no palette, reserved
ico.writeUInt16LE(1, 10) // colour planes
ico.writeUInt16LE(32, 12) // bits per pixel
ico.writeUInt32LE(png.length, 14)
ico.writeUInt32LE(22, 18) // offset of the image
const out = new URL('../public/favicon.ico', import.meta.url)
writeFileSync(out, Buffer.concat([ico, png]))
console.log(`wrote ${out.pathname} (${ico.length + png.length} bytes)`)
