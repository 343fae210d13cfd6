"""Jobs run from the command line (`distthrml run CONFIG`): config schema, model building,
sharded chunked sampling with a progress bar, observables, and the files a run writes."""

from .config import ConfigError as ConfigError
from .config import RunConfig as RunConfig
from .config import load_run_config as load_run_config
from .config import parse_run_config as parse_run_config
from .run import run_sampling as run_sampling
