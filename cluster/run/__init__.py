"""`distthrml run CONFIG`, the sampling job: config schema (`config`), the compiled sampler
(`engine`), chunked sampling with a progress bar (`chunks`), observables (`observe`, `stats`),
the report, the plots and the files a run writes (`report`, `plots`, `output`), end to end in
`job.run_sampling`; `cli` is the subcommand's parser and handler. The models come from
`cluster.workloads`.

Importing this package imports nothing else: import the module you need.
"""
