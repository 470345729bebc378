"""The subcommands, one module each (`rewrite`, `strip`, `info`, `eval`, `bench`, `demo`, `fetch_data`), the
argument groups they share (`args`) and the tables they print (`tables`). Only `haste_onnx.cli` imports them;
the library below never does."""
