// A gate for the client's `auth` function: while it is closed, a reconnecting
// socket.io-client waits before sending its CONNECT packet, so that a test can
// write what the client should miss while it is away.

export class Gate {
  #opened = Promise.resolve();
  #open = () => {};

  close() {
    this.#opened = new Promise((resolve) => {
      this.#open = resolve;
    });
  }

  open() {
    this.#open();
    this.#opened = Promise.resolve();
  }

  passed() {
    return this.#opened;
  }
}
