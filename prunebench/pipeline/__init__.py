"""The experiment pipeline: the plan's stage graph (``graph``), what each stage does (``stages``), whole-plan
validation (``plan``) and the executor (``runner``)."""
