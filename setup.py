"""The package list: snncc's packages, and the bundled example (examples/digits_vit) as
snncc/examples/digits_vit inside the wheel, so that `snncc demo` runs from an installed
package. Everything else is in pyproject.toml."""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["snncc*"]), "snncc.examples.digits_vit"],
      package_dir={"snncc.examples.digits_vit": "examples/digits_vit"})
