'use strict';
// Quoting for commands the CLI prints for pasting into a POSIX shell.

const SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;

function quote(word) {
  const s = String(word);
  if (s !== '' && SAFE.test(s)) return s;
  return `'${s.replaceAll("'", "'\\''")}'`;
}

function command(words) {
  return words.map(quote).join(' ');
}

module.exports = { quote, command };
