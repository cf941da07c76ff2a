/**
 * Reading compressed qcow2 clusters: raw deflate (zlib compression type)
 * that must inflate to exactly one cluster. Decompression runs on the
 * libuv thread pool; the output is bounded by the cluster size, so a
 * malicious stream cannot make us allocate more.
 */
import type { BlockNode } from '../block-node.js';
import { LivebackupError } from '../../errors.js';
import type { CompressedExtent } from './qcow2-format.js';

/** node:zlib, loaded on the first compressed cluster (most images have none, and it costs start-up time). */
let zlibModule: Promise<typeof import('node:zlib')> | undefined;
function loadZlib(): Promise<typeof import('node:zlib')> {
  return (zlibModule ??= import('node:zlib'));
}

async function inflateBounded(input: Uint8Array, maxOutputLength: number): Promise<Buffer> {
  const { inflateRaw, constants } = await loadZlib();
  return new Promise((resolve, reject) => {
    inflateRaw(input, { finishFlush: constants.Z_SYNC_FLUSH, maxOutputLength }, (error, result) =>
      error ? reject(error) : resolve(result),
    );
  });
}

/**
 * Read and inflate the compressed cluster at `extent` of `file` into a new
 * buffer of `clusterSize` bytes. Throws CORRUPT_IMAGE when the data lies
 * outside the file or does not inflate to a full cluster.
 */
export async function readCompressedCluster(file: BlockNode, extent: CompressedExtent, clusterSize: number): Promise<Uint8Array> {
  if (extent.hostOffset >= file.length || extent.hostOffset === 0) {
    throw new LivebackupError(
      'CORRUPT_IMAGE',
      `qcow2 compressed cluster at host offset ${extent.hostOffset} lies outside the image file of ${file.length} bytes`,
    );
  }
  const available = Math.min(extent.bytes, file.length - extent.hostOffset);
  const input = new Uint8Array(available);
  await file.read(extent.hostOffset, input);
  let output: Buffer;
  try {
    output = await inflateBounded(input, clusterSize);
  } catch (error) {
    // maxOutputLength exceeded means more than a cluster: take what inflates within it instead.
    if ((error as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
      output = await inflateWithin(input, clusterSize);
    } else {
      throw new LivebackupError('CORRUPT_IMAGE', `qcow2 compressed cluster at host offset ${extent.hostOffset} cannot be inflated: ${(error as Error).message}`, {
        cause: error,
      });
    }
  }
  if (output.length < clusterSize) {
    throw new LivebackupError(
      'CORRUPT_IMAGE',
      `qcow2 compressed cluster at host offset ${extent.hostOffset} inflates to ${output.length} bytes instead of ${clusterSize}`,
    );
  }
  return new Uint8Array(output.buffer, output.byteOffset, clusterSize);
}

/** Inflate at most `limit` bytes of output with a streaming inflater, stopping when that much is produced. */
async function inflateWithin(input: Uint8Array, limit: number): Promise<Buffer> {
  const { createInflateRaw, constants } = await loadZlib();
  return new Promise((resolve, reject) => {
    const stream = createInflateRaw({ finishFlush: constants.Z_SYNC_FLUSH });
    const chunks: Buffer[] = [];
    let total = 0;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      stream.destroy();
      resolve(Buffer.concat(chunks, Math.min(total, limit)));
    };
    stream.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      total += chunk.length;
      if (total >= limit) finish();
    });
    stream.on('end', finish);
    stream.on('error', (error) => {
      if (done) return;
      done = true;
      reject(new LivebackupError('CORRUPT_IMAGE', `qcow2 compressed cluster cannot be inflated: ${error.message}`, { cause: error }));
    });
    stream.end(input);
  });
}
