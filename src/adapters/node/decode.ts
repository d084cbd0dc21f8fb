/**
 * Compressed upstream answers decoded as Node's fetch decodes them, for the undici transport
 * (upstream.ts): the same codings, the same limit on how many, the same reading of "deflate".
 */
import { Transform, type TransformCallback } from 'node:stream'
import zlib from 'node:zlib'

const MAX_CONTENT_ENCODINGS = 5

/** zlib decoders for a Content-Encoding list, as fetch builds them; none for an unknown coding. */
export function decodersFor(contentEncoding: string): Transform[] {
  const codings = contentEncoding.toLowerCase().split(',')
  if (codings.length > MAX_CONTENT_ENCODINGS) {
    throw new Error(`too many content-encodings in response: ${codings.length}`)
  }
  const decoders: Transform[] = []
  for (let i = codings.length - 1; i >= 0; i--) {
    const coding = codings[i]!.trim()
    const flush = { flush: zlib.constants.Z_SYNC_FLUSH, finishFlush: zlib.constants.Z_SYNC_FLUSH }
    if (coding === 'gzip' || coding === 'x-gzip') decoders.push(zlib.createGunzip(flush))
    else if (coding === 'deflate') decoders.push(new Inflate(flush))
    else if (coding === 'br') {
      decoders.push(
        zlib.createBrotliDecompress({
          flush: zlib.constants.BROTLI_OPERATION_FLUSH,
          finishFlush: zlib.constants.BROTLI_OPERATION_FLUSH,
        })
      )
    } else return []
  }
  return decoders
}

/** "deflate" as fetch reads it: zlib-wrapped when the first byte says so, raw deflate otherwise. */
class Inflate extends Transform {
  #inflate: Transform | undefined
  constructor(private readonly zlibOptions: zlib.ZlibOptions) {
    super()
  }
  override _transform(chunk: Buffer, encoding: BufferEncoding, callback: TransformCallback) {
    if (!this.#inflate) {
      if (chunk.length === 0) return callback()
      this.#inflate =
        (chunk[0]! & 15) === 8
          ? zlib.createInflate(this.zlibOptions)
          : zlib.createInflateRaw(this.zlibOptions)
      this.#inflate.on('data', (data: Buffer) => this.push(data))
      this.#inflate.on('end', () => this.push(null))
      this.#inflate.on('error', (err) => this.destroy(err))
    }
    this.#inflate.write(chunk, encoding, callback)
  }
  override _final(callback: TransformCallback) {
    this.#inflate?.end()
    this.#inflate = undefined
    callback()
  }
}
