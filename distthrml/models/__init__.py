"""Models: energy-based models, discrete EBM factors and samplers, Ising models."""

from .discrete_ebm import CategoricalEBMFactor as CategoricalEBMFactor
from .discrete_ebm import CategoricalGibbsConditional as CategoricalGibbsConditional
from .discrete_ebm import DiscreteEBMFactor as DiscreteEBMFactor
from .discrete_ebm import DiscreteEBMInteraction as DiscreteEBMInteraction
from .discrete_ebm import SpinEBMFactor as SpinEBMFactor
from .discrete_ebm import SpinGibbsConditional as SpinGibbsConditional
from .discrete_ebm import SquareCategoricalEBMFactor as SquareCategoricalEBMFactor
from .discrete_ebm import SquareDiscreteEBMFactor as SquareDiscreteEBMFactor
from .ebm import AbstractEBM as AbstractEBM
from .ebm import AbstractFactorizedEBM as AbstractFactorizedEBM
from .ebm import EBMFactor as EBMFactor
from .ebm import FactorizedEBM as FactorizedEBM
from .ising import IsingEBM as IsingEBM
from .ising import IsingSamplingProgram as IsingSamplingProgram
from .ising import IsingTrainingSpec as IsingTrainingSpec
from .ising import estimate_kl_grad as estimate_kl_grad
from .ising import estimate_moments as estimate_moments
from .ising import hinton_init as hinton_init
