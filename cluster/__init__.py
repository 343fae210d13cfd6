"""The applications above the library: the `distthrml` command line (`cli`) and its jobs
(`run`, `partition_cli`, `train`, `emulate`, `launch_cli`), the model library they share
(`workloads`), config files (`config_file`), devices and meshes (`devices`), progress bars,
plots' colours, exact physics references, and Ray multi-host launch (`ray_launch`,
`ray_sample`). Imports `distthrml` and `partition`; nothing below imports this package."""
