"""setuptools hook: compiles the cffi capture module (see build_ext.py)."""

from setuptools import setup

setup(cffi_modules=["build_ext.py:ffibuilder"])
