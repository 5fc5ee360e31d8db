// A CLI failure already decided: its message, exit code and D-Bus name (for --json).
export class Failure extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
    readonly dbusName?: string,
  ) {
    super(message);
  }
}
