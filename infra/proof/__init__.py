"""The closed-network proof over the resources the program declares (before any deploy)."""

from __future__ import annotations

from infra.offline import KNOWN_INVOKES, Evaluation
from infra.proof.model import Declared, Model, build_model
from infra.proof.verdicts import Proof, prove


def model_of(ev: Evaluation) -> Model:
    prefix = KNOWN_INVOKES["aws:ec2/getPrefixList:getPrefixList"]
    dx = KNOWN_INVOKES[
        "aws:ec2transitgateway/getDirectConnectGatewayAttachment:getDirectConnectGatewayAttachment"
    ]
    return build_model(
        [Declared(r.type, r.name, r.inputs, r.outputs) for r in ev.resources],
        prefix_cidrs={prefix["prefixListId"]: prefix["cidrBlocks"]},
        dx_attachment_id=dx["id"],
        region=ev.config.region,
    )


def prove_evaluation(ev: Evaluation) -> Proof:
    return prove(model_of(ev), ev.config)
