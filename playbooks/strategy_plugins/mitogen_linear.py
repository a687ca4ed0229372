"""Ansible's linear strategy, run through Mitogen (ansible.cfg makes it the default).

Without it every task on every host starts a new Python that unpacks the module and compiles
ansible.module_utils from source before doing anything: about a third of a CPU-second per task
per host, which is most of what a site.yml pass costs. Mitogen keeps one Python per host (and
one per become user) for the whole run, over the same SSH path (ProxyJump through the bastion),
and sends each module's code once. What runs, in what order, and what is reported are Ansible's
own: this is the linear strategy with Mitogen's connection handling mixed in.

`ANSIBLE_STRATEGY=linear` runs a playbook without it.
"""

from __future__ import annotations

import ansible_mitogen.loaders
import ansible_mitogen.strategy

_Linear = ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True)


class StrategyModule(ansible_mitogen.strategy.StrategyMixin, _Linear):  # type: ignore[misc,valid-type]
    pass
