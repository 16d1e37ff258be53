"""Architectures and the registry. Importing this package registers every model file."""

from prunebench.models import resnet_cifar, vgg_cifar  # noqa: F401  (registration side effects)
from prunebench.models import resnet_imagenet, vgg_imagenet  # noqa: F401  (registration side effects)
from prunebench.models import densenet_cifar, preresnet_cifar  # noqa: F401  (registration side effects)
from prunebench.models import mobilenet_v2  # noqa: F401  (registration side effects)
from prunebench.models.registry import (
    MODELS, Binding, ModelSpec, build_model, get_model_spec, ignored_of, input_shape_of, is_external, num_classes_of,
    register_model, reinitialize,
)

__all__ = ["MODELS", "Binding", "ModelSpec", "build_model", "get_model_spec", "ignored_of", "input_shape_of",
           "is_external", "num_classes_of", "register_model", "reinitialize"]
