"""The models the sampling commands build from a `model:` section, one library for all of them
(`distthrml run` samples them, `distthrml emulate` maps them onto chips, `distthrml train`
colours its graph with it):

- `schema`: the `model:` section (`ModelConfig`, `parse_model`, `model_keys`); pure Python.
- `graphs`: the graph of every kind as edge arrays, and its colour classes.
- `build`: `build_model` (the sampling program), `partition_model`, `random_states`.

Importing this package imports neither JAX nor the builders: import the module you need.
"""
