"""Many-chip system emulation (`distthrml emulate`): map a model onto chips of fixed capacity
joined by links, sample it with one shard per chip, count the link traffic of the executed
exchange plans, and project sweep time and energy (see README, "Emulating a many-chip system").

- `config`: the chip-system config; `topology`: chips and links; `placement`: parts onto chips;
- `sampling`: one shard per chip; `ray_chips`: the chips spread over Ray processes;
- `traffic`: bits per link and colour step; `projection`: sweep time and energy;
- `run`: one emulation end to end (and sweeps); `report`, `plots`: what it writes;
- `cli`: the subcommand's parser and handler.

Importing this package imports nothing else: import the module you need.
"""
