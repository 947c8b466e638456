// Requests that could not be delivered: one file per request body,
// <19-digit time ns>-<pid>-<6-digit seq>-<points>.json, written to a temporary name and renamed.

import * as fs from 'node:fs';
import { join } from 'node:path';

export class Spool {
  constructor(dir, maxBytes) {
    this.dir = dir;
    this.maxBytes = maxBytes;
    this.seq = 0;
  }

  /** Spooled request files, oldest first (full paths). */
  pending() {
    let names;
    try {
      names = fs.readdirSync(this.dir);
    } catch {
      return [];
    }
    return names.filter((n) => n.endsWith('.json') && !n.startsWith('.')).sort().map((n) => join(this.dir, n));
  }

  sizeBytes() {
    let total = 0;
    for (const f of this.pending()) {
      try {
        total += fs.statSync(f).size;
      } catch {
        // replayed meanwhile
      }
    }
    return total;
  }

  /** Writes one body synchronously; false when the spool is full. Throws on disk errors. */
  write(body, points, nowNs) {
    fs.mkdirSync(this.dir, { recursive: true });
    const bytes = Buffer.byteLength(body);
    if (this.sizeBytes() + bytes > this.maxBytes) return false;
    this.seq = (this.seq + 1) % 1_000_000;
    const name = `${nowNs.toString().padStart(19, '0')}-${process.pid}-${String(this.seq).padStart(6, '0')}-${points}.json`;
    const tmp = join(this.dir, `.${name}.tmp`);
    fs.writeFileSync(tmp, body);
    fs.renameSync(tmp, join(this.dir, name));
    return true;
  }

  static pointsOf(file) {
    const m = /-(\d+)\.json$/.exec(file);
    return m ? Number(m[1]) : 0;
  }

  static delete(file) {
    try {
      fs.unlinkSync(file);
    } catch {
      // another process replayed it
    }
  }

  static reject(file) {
    try {
      fs.renameSync(file, `${file}.rejected`);
    } catch {
      Spool.delete(file);
    }
  }
}
