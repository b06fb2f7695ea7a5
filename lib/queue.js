'use strict';
// A bounded queue of firings, by count and by bytes, filled on the
// application's path and emptied off it. Full, it either drops what comes
// (a subscription: the consumer learns how many) or forgets the oldest (the
// flight recorder keeps the most recent). Its storage grows as it fills, up
// to the bound, and shrinks back once emptied.
//
// Bytes are an estimate of what an entry holds: a fixed part, 8 per value,
// and a string's length.

const ENTRY_BYTES = 48;
const VALUE_BYTES = 8;
const MIN_CAPACITY = 16;
// Storage kept when the queue empties: refilled at once under a steady
// flow, so a burst does not grow it again every turn.
const KEPT_CAPACITY = 65536;

function sizeOf(values) {
  let bytes = ENTRY_BYTES;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    bytes += typeof v === 'string' ? VALUE_BYTES + v.length : VALUE_BYTES;
  }
  return bytes;
}

class FiringQueue {
  // { count, bytes }: the bounds; keepLatest: forget the oldest when full.
  constructor({ count, bytes, keepLatest = false }) {
    this.maxCount = count;
    this.maxBytes = bytes;
    this.keepLatest = keepLatest;
    this.dropped = 0; // refused (or, keeping the latest, forgotten) so far
    this.length = 0;
    this.bytes = 0;
    this.head = 0;
    this.capacity = 0;
    this.taps = [];
    this.times = [];
    this.values = [];
    this.sizes = [];
  }

  // Adds a firing; false when it was dropped.
  push(tap, time, values) {
    const size = sizeOf(values);
    if (size > this.maxBytes) {
      this.dropped++;
      return false;
    }
    if (this.length >= this.maxCount || this.bytes + size > this.maxBytes) {
      if (!this.keepLatest) {
        this.dropped++;
        return false;
      }
      while (this.length > 0 && (this.length >= this.maxCount || this.bytes + size > this.maxBytes)) {
        this.shift();
        this.dropped++;
      }
    }
    if (this.length === this.capacity) this.grow();
    const at = (this.head + this.length) % this.capacity;
    this.taps[at] = tap;
    this.times[at] = time;
    this.values[at] = values;
    this.sizes[at] = size;
    this.length++;
    this.bytes += size;
    return true;
  }

  grow() {
    const capacity = Math.min(this.maxCount, Math.max(MIN_CAPACITY, this.capacity * 2));
    const taps = new Array(capacity);
    const times = new Array(capacity);
    const values = new Array(capacity);
    const sizes = new Array(capacity);
    for (let i = 0; i < this.length; i++) {
      const from = (this.head + i) % this.capacity;
      taps[i] = this.taps[from];
      times[i] = this.times[from];
      values[i] = this.values[from];
      sizes[i] = this.sizes[from];
    }
    Object.assign(this, { taps, times, values, sizes, capacity, head: 0 });
  }

  // Removes the oldest firing into `out` ({ tap, time, values }); false when empty.
  shift(out = null) {
    if (this.length === 0) return false;
    const at = this.head;
    if (out !== null) {
      out.tap = this.taps[at];
      out.time = this.times[at];
      out.values = this.values[at];
    }
    this.bytes -= this.sizes[at];
    this.taps[at] = undefined;
    this.values[at] = undefined;
    this.head = (at + 1) % this.capacity;
    this.length--;
    if (this.length === 0) this.reset();
    return true;
  }

  // Every firing, oldest first, without removing them.
  snapshot() {
    const out = [];
    for (let i = 0; i < this.length; i++) {
      const at = (this.head + i) % this.capacity;
      out.push({ tap: this.taps[at], time: this.times[at], values: this.values[at] });
    }
    return out;
  }

  // Empty: storage beyond what a steady flow needs goes back.
  reset() {
    this.head = 0;
    this.bytes = 0;
    if (this.capacity > KEPT_CAPACITY) {
      this.capacity = 0;
      this.taps = [];
      this.times = [];
      this.values = [];
      this.sizes = [];
    }
  }
}

module.exports = { FiringQueue, sizeOf };
