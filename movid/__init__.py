"""The ``movid`` command: the one package above both layers. It only assembles the data side's commands
(``pipeline.cli``) and the consumer side's (``model.cli``) into one parser; neither side imports it."""
