"""Order approval rules (审批规则): storage, REST and the compiled book the order pool asks."""
