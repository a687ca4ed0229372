"""Ansible's linear strategy, run through Mitogen: `strategy: mitogen_linear` on a play.

Without it every task on every host starts a new Python that unpacks the module and compiles
ansible.module_utils from source before doing anything: about a third of a CPU-second per task
per host, which is most of what a site.yml pass costs. Mitogen keeps one Python per host (and
one per become user) for the whole run, over the same SSH path (ProxyJump through the bastion),
and sends each module's code once. What runs, in what order, and what is reported are Ansible's
own: this is the linear strategy with Mitogen's connection handling mixed in.

Starting those Pythons costs a few seconds per host per run, which pays for itself only over
many tasks. So the long plays name it (site.yml and the playbooks it imports, access_review.yml;
a no-change site.yml pass goes from 135 s to 40 s in the lab), and the short ones (the key
rotation's steps, one host and a few tasks each) keep Ansible's default. ansible-core 2.19
warns that strategies from outside ansible.builtin are deprecated; if a release drops them,
the plays run as they are with `strategy: linear`.
"""

from __future__ import annotations

import ansible_mitogen.loaders
import ansible_mitogen.strategy

_Linear = ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True)


class StrategyModule(ansible_mitogen.strategy.StrategyMixin, _Linear):  # type: ignore[misc,valid-type]
    pass
