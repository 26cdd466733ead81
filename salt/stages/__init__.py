"""One module per DVC stage (see ``dvc.yaml``): data -> model -> vocab -> mlm -> codeswitch ->
train -> evaluate. Each module holds

- ``GROUP``: the ``params.yaml`` group its ``SETTINGS`` schema validates (every profile, at load);
- ``READS``: every params key its config is built from (what ``dvc.yaml`` lists as ``params``);
- ``configure(params, args) -> Config``: a frozen, typed config (the stage reads nothing else);
- ``run(config, paths)``: the work, reading and writing under ``salt.workdir.Paths``.
"""

STAGES = ("prepare", "model", "vocab", "mlm", "codeswitch", "train", "evaluate")
