"""weightzoo's domain package: specs, architectures, tasks, population training, the Zarr store."""

from zoo.architectures import CNN, MLP, Architecture, Transformer, architecture_from_dict
from zoo.layout import Layout, ParamSpec
from zoo.permutation import PermGroup, PermutationSpec, apply_permutation
from zoo.population import Population
from zoo.spec import ZooSpec
from zoo.store import StoredPopulation, Zoo, open_zoo
from zoo.tasks import TaskData, get_task, register_task
from zoo.training import Status, TrainConfig, train_population

__all__ = [
    "Architecture", "MLP", "CNN", "Transformer", "architecture_from_dict",
    "Layout", "ParamSpec", "PermGroup", "PermutationSpec", "apply_permutation",
    "Population", "TaskData", "get_task", "register_task",
    "ZooSpec", "Zoo", "StoredPopulation", "open_zoo",
    "Status", "TrainConfig", "train_population",
]  # fmt: skip
