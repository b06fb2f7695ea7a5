'use strict';
// Errors the CLI reports as one message (no stack trace) and an exit code.

class CliError extends Error {
  constructor(message, { code = 1, hint = null } = {}) {
    super(message);
    this.name = 'CliError';
    this.exitCode = code;
    this.hint = hint;
  }
}

// Wrong command-line usage: exit code 2.
class UsageError extends CliError {
  constructor(message) {
    super(message, { code: 2, hint: 'run `dynprobe --help` for usage' });
    this.name = 'UsageError';
  }
}

module.exports = { CliError, UsageError };
