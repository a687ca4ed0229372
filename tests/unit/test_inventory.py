"""The inventory generator (python -m ops.inventory): from a deployed stack's outputs to an
inventory that Ansible accepts, with every host reached through the bastion; and every kind of
bad input refused with the file, key and value named, exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.config import load_stack
from ops.inventory import InventoryError
from ops.inventory.generate import Layer, write_inventory
from ops.inventory.operators import key_problem, load_operators, parse_operators
from ops.inventory.outputs import load_outputs
from tests.support.inventory import make_key, write_operators, write_outputs

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
OUTPUTS = DATA / "omuta-prod.stack-outputs.json"
OPERATORS = DATA / "operators.yml"
BIN = Path(sys.executable).parent


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ops.inventory", *args],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def omuta(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("omuta") / "inventory"
    proc = _cli("--stack", "omuta-prod", "--outputs", str(OUTPUTS), "--operators",
                str(OPERATORS), "--as", "tanaka", "--out", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return out


def test_ansible_inventory_accepts_it_with_hosts_from_the_outputs(omuta: Path) -> None:
    proc = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(omuta / "inventory.yml"), "--list"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    data = json.loads(proc.stdout)
    outputs = json.loads(OUTPUTS.read_text())
    hostvars = data["_meta"]["hostvars"]
    assert sorted(data["datacenter"]["hosts"]) == sorted(outputs["privateIps"])
    for name, address in outputs["privateIps"].items():
        assert hostvars[name]["ansible_host"] == address
        assert hostvars[name]["claims_dc_instance_id"] == outputs["instanceIds"][name]
    app = hostvars["app-1"]
    assert app["ansible_user"] == "tanaka"
    assert app["claims_dc_backup_bucket"] == outputs["backupBucket"]
    assert app["claims_dc_backup_kms_key_id"] == outputs["storageKeyArn"]
    assert app["claims_dc_aws_region"] == "ap-northeast-1"
    assert app["claims_dc_aws_endpoints"]["ssm"] == outputs["endpointDnsNames"]["ssm"][0]
    assert [o["name"] for o in app["base_operators"]] == ["tanaka", "sato"]
    assert app["base_operators"][0]["comment"].startswith("S0101 ")
    config = load_stack("omuta-prod", REPO)
    assert len(app["claims_dc_flows"]) == len(config.flows)
    assert sorted(data["role_app"]["hosts"]) == ["app-1", "app-2"]
    assert not data.get("stand_ins", {}).get("hosts")


def test_site_yml_accepts_it(omuta: Path) -> None:
    inventory = str(omuta / "inventory.yml")
    playbook = str(REPO / "playbooks" / "site.yml")
    for extra in (["--syntax-check"], ["--list-hosts"]):
        proc = subprocess.run(
            [str(BIN / "ansible-playbook"), "-i", inventory, playbook, *extra],
            cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "db-1" in proc.stdout and "bastion-1" in proc.stdout


def _ssh_g(config: Path, host: str) -> dict[str, str]:
    out = subprocess.run(
        ["ssh", "-G", "-F", str(config), host], capture_output=True, text=True, check=True
    ).stdout
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def test_every_host_is_reached_through_the_bastion_and_the_bastion_by_ssm(omuta: Path) -> None:
    config = omuta / "ssh_config"
    outputs = json.loads(OUTPUTS.read_text())
    bastion = _ssh_g(config, "bastion-1")
    assert bastion["proxycommand"].startswith("aws ssm start-session --target ")
    assert outputs["instanceIds"]["bastion-1"] in bastion["proxycommand"]
    assert "AWS-StartSSHSession" in bastion["proxycommand"]
    assert bastion["hostkeyalias"] == "bastion-1"
    # One shared session to the bastion carries every hop through it.
    assert bastion["controlmaster"] == "auto"
    assert bastion["controlpath"].startswith(str(omuta / "cm-"))
    for name, address in outputs["privateIps"].items():
        if name == "bastion-1":
            continue
        for alias in (name, address):
            seen = _ssh_g(config, alias)
            assert seen["proxyjump"] == "bastion-1", alias
            assert seen["hostname"] == address
            assert seen["stricthostkeychecking"] == "true"
            assert seen["userknownhostsfile"] == str(omuta / "known_hosts")
            assert seen["user"] == "tanaka"
            assert seen["passwordauthentication"] == "no"
            assert seen["controlmaster"] == "false"  # only the jump is shared
    ansible_args = yaml.safe_load((omuta / "group_vars" / "all" / "00-stack.yml").read_text())
    assert ansible_args["ansible_ssh_common_args"] == f"-F {config}"
    assert (omuta.stat().st_mode & 0o777) == 0o700


def test_direct_connection_for_a_node_inside_the_management_network(tmp_path: Path) -> None:
    out = tmp_path / "inv"
    proc = _cli("--stack", "omuta-prod", "--outputs", str(OUTPUTS), "--operators",
                str(OPERATORS), "--connect", "direct", "--out", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    seen = _ssh_g(out / "ssh_config", "db-1")
    assert "proxyjump" not in seen and "proxycommand" not in seen
    assert seen["user"] == "tanaka"  # the file's first operator


# --- bad outputs -----------------------------------------------------------------------------


def _omuta_outputs(tmp_path: Path, **changes: Any) -> Path:
    document = json.loads(OUTPUTS.read_text())
    for key, value in changes.items():
        if value is None:
            document.pop(key, None)
        else:
            document[key] = value
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(document))
    return path


def _refused(tmp_path: Path, outputs: Path, *extra: str) -> str:
    proc = _cli("--stack", "omuta-prod", "--outputs", str(outputs), "--operators",
                str(OPERATORS), "--out", str(tmp_path / "inv"), *extra)  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "inv" / "inventory.yml").exists()
    return proc.stderr


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"privateIps": None}, "output 'privateIps' is missing"),
        ({"backupBucket": None}, "output 'backupBucket' is missing"),
        ({"storageKeyArn": "[secret]"}, "output 'storageKeyArn' is shown as [secret]"),
        ({"region": "us-east-1"}, "output 'region' is 'us-east-1'"),
        ({"instanceIds": {"app-1": "i-1"}}, "output 'instanceIds'['app-2']"),
        ({"storageKeyArn": "arn:aws:kms:ap-northeast-3:210987654321:key/x"}, "ap-northeast-3"),
        ({"backupBucket": "Not_A_Bucket"}, "'Not_A_Bucket' is not an S3 bucket name"),
        ({"privateIps": "10.80.10.10"}, "output 'privateIps' must be an object"),
        ({"backupBreakGlassRoleArn": "role/x"}, "'role/x' is not an IAM role ARN"),
    ],
)
def test_a_missing_or_malformed_output_is_named_with_its_file(
    tmp_path: Path, changes: dict[str, Any], named: str
) -> None:
    outputs = _omuta_outputs(tmp_path, **changes)
    err = _refused(tmp_path, outputs)
    assert named in err
    assert str(outputs) in err


def test_the_break_glass_role_reaches_the_access_review(tmp_path: Path) -> None:
    from infra.config import load_stack
    from ops.inventory.outputs import load_outputs

    outputs = load_outputs(OUTPUTS, load_stack("omuta-prod"))
    assert outputs.break_glass_roles == ["claims-dc-402028-omuta-prod-backup-break-glass"]


def test_addresses_must_be_the_configs_and_hosts_the_stacks(tmp_path: Path) -> None:
    ips = json.loads(OUTPUTS.read_text())["privateIps"]
    err = _refused(tmp_path, _omuta_outputs(
        tmp_path, privateIps={**ips, "app-1": "10.80.20.99", "db-1": "10.80.20.11",
                              "intake-1": "x", "mail-1": "10.80.10.50"},
    ))  # fmt: skip
    assert "'privateIps'['app-1'] = 10.80.20.99 is outside zone app" in err
    assert "'privateIps'['db-1'] = 10.80.20.11, but Pulumi.omuta-prod.yaml gives" in err
    assert "'privateIps'['intake-1'] = 'x' is not an IPv4 address" in err
    assert "names host 'mail-1', which Pulumi.omuta-prod.yaml does not deploy" in err


@pytest.mark.parametrize(
    ("content", "named"),
    [
        (b"{not json", "not JSON (line 1"),
        (b"[1, 2]", "expected a JSON object of outputs, got list"),
        (b'{"region": "\xff"}', "not UTF-8"),
        (b" " * (4 * 1024 * 1024 + 1), "larger than"),
    ],
)
def test_a_file_that_is_not_stack_outputs_is_refused(
    tmp_path: Path, content: bytes, named: str
) -> None:
    path = tmp_path / "outputs.json"
    path.write_bytes(content)
    assert named in _refused(tmp_path, path)


def test_missing_files_and_an_unknown_operator_are_usage_errors(tmp_path: Path) -> None:
    assert "cannot read the stack outputs" in _refused(tmp_path, tmp_path / "nope.json")
    err = _refused(tmp_path, OUTPUTS, "--as", "mallory")
    assert "--as 'mallory': not in the operators file" in err
    proc = _cli("--stack", "nosuch", "--outputs", str(OUTPUTS), "--operators", str(OPERATORS),
                "--out", str(tmp_path / "x"))  # fmt: skip
    assert proc.returncode == 2 and "Pulumi.nosuch.yaml" in proc.stderr


# --- the operators file ------------------------------------------------------------------------


def _ops(text: str) -> list[str]:
    with pytest.raises(InventoryError) as info:
        parse_operators(text.encode(), "operators.yml")
    return info.value.problems


def test_the_sample_operators_file_loads() -> None:
    operators = load_operators(OPERATORS)
    assert [(o.name, o.staff_id) for o in operators] == [("tanaka", "S0101"), ("sato", "S0102")]


def test_operators_file_problems_are_each_named(tmp_path: Path) -> None:
    key = make_key(tmp_path / "a")
    other = make_key(tmp_path / "b")
    # The same person's staff ID typed in full-width characters.
    FULL_WIDTH_S0101 = "\uff33\uff10\uff11\uff10\uff11"
    problems = _ops(f"""operators:
  - name: tanaka
    staff_id: s0101
    public_keys: [{key}]
  - name: tanaka2
    staff_id: {FULL_WIDTH_S0101}
    public_keys: [{other}]
  - name: root
    staff_id: S0103
    public_keys: [{other}]
  - name: sato
    staff_id: S01
    role: admin
    public_keys: [{key}]
  - name: Bad Name
    staff_id: S0105
    public_keys: [{other}]
""")
    text = "\n".join(problems)
    assert "operator 2 (tanaka2): staff_id S0101 already has an account (operator 1)" in text
    assert "operator 3: name 'root' is a system or service account" in text
    assert "operator 4: unknown keys ['role']" in text
    assert "operator 4: staff_id 'S01' is not a letter and 3-6 digits" in text
    assert "operator 4 (sato): a public key also given to operator 1" in text
    assert "operator 5: name 'Bad Name' is not a login" in text


def test_keys_that_are_not_one_acceptable_public_key_are_refused(tmp_path: Path) -> None:
    rsa = tmp_path / "rsa"
    subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", str(rsa)],
                   check=True)  # fmt: skip
    good = make_key(tmp_path / "good")
    assert key_problem(good) is None
    assert "RSA of 2048 bits" in str(key_problem(rsa.with_suffix(".pub").read_text()))
    private = (tmp_path / "good").read_text()
    assert "is a private key" in str(key_problem(private))
    assert "options" in str(key_problem(f'from="10.0.0.1" {good}'))
    assert "not valid base64" in str(key_problem("ssh-ed25519 !!!notbase64"))
    blob = good.split()[1]
    assert "another type" in str(key_problem(f"ecdsa-sha2-nistp256 {blob}"))
    block = "".join(f"        {line}\n" for line in private.splitlines())
    problems = _ops(
        f"operators:\n  - name: a1\n    staff_id: S0101\n    public_keys:\n      - |\n{block}"
    )
    assert any("public key 1 is not one line" in p for p in problems)
    assert not any("OPENSSH" in p or private.splitlines()[1] in p for p in problems)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("", "expected one key, 'operators'"),
        ("operators: []", "'operators' must be a non-empty list"),
        ("people: []", "expected one key, 'operators'"),
        ("operators: [oops", "not YAML at line"),
        ("operators:\n  - just-a-name\n", "expected a mapping"),
    ],
)
def test_an_operators_file_of_the_wrong_shape_is_refused(text: str, named: str) -> None:
    assert any(named in p for p in _ops(text))


def test_an_operators_file_in_another_encoding_or_too_big_is_refused() -> None:
    assert "not UTF-8" in _ops_bytes("operators:\n  - name: 田中\n".encode("cp932"))
    assert "larger than" in _ops_bytes(b"#" * (256 * 1024 + 1))


def _ops_bytes(data: bytes) -> str:
    with pytest.raises(InventoryError) as info:
        parse_operators(data, "operators.yml")
    return "\n".join(info.value.problems)


# --- layers ---------------------------------------------------------------------------------


def test_a_layer_adds_reasoned_variables_and_goes_away_when_no_longer_asked(
    tmp_path: Path,
) -> None:
    config = load_stack("lab", REPO)
    outputs = load_outputs(write_outputs(config, tmp_path / "o.json"), config)
    operators = load_operators(
        write_operators(tmp_path / "ops.yml", ("opsadmin", "L0001", make_key(tmp_path / "k")))
    )
    layer = Layer("50-test", "a test layer", {"claims_dc_in_container": (True, "why not")},
                  hosts={"terminal-1": {"ansible_host": "10.232.1.10", "claims_dc_zone": "lgwan",
                                        "claims_dc_role": "terminal"}},
                  groups={"stand_ins": ["terminal-1"]})  # fmt: skip
    out = tmp_path / "inv"
    write_inventory(config, outputs, operators, out, connect="direct", layer=layer)
    text = (out / "group_vars" / "all" / "50-test.yml").read_text()
    assert "# why not\nclaims_dc_in_container: true\n" in text
    inv = yaml.safe_load((out / "inventory.yml").read_text())["all"]
    assert inv["children"]["stand_ins"]["hosts"] == {"terminal-1": None}
    assert "Host terminal-1 10.232.1.10" in (out / "ssh_config").read_text()
    mine = out / "group_vars" / "all" / "90-mine.yml"
    mine.write_text("---\nsomething: 1\n")  # an operator's own file is never touched
    write_inventory(config, outputs, operators, out, connect="direct")
    assert not (out / "group_vars" / "all" / "50-test.yml").exists()
    assert mine.exists()
    with pytest.raises(InventoryError, match="deployed hosts"):
        write_inventory(config, outputs, operators, out, connect="direct",
                        layer=Layer("x", "x", {}, hosts={"app-1": {}}))  # fmt: skip


# --- the jump host ---------------------------------------------------------------------------


def test_the_bastion_forwards_to_the_other_data_center_hosts_ssh_and_nothing_else(
    omuta: Path,
) -> None:
    proc = subprocess.run(
        [str(BIN / "ansible"), "datacenter", "-i", str(omuta / "inventory.yml"), "-o",
         "--playbook-dir", str(REPO / "playbooks"), "-c", "local",
         "-m", "ansible.builtin.debug", "-a", "var=hardening_ssh_jump_targets"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    seen = {
        line.split(" | ")[0]: json.loads(line.split(" => ", 1)[1])
        for line in proc.stdout.splitlines()
        if " | SUCCESS => " in line
    }
    outputs = json.loads(OUTPUTS.read_text())
    others = {a for n, a in outputs["privateIps"].items() if n != "bastion-1"}
    # Sorted, so that a converged bastion's sshd_config is the same on every run.
    assert seen["bastion-1"]["hardening_ssh_jump_targets"] == sorted(f"{a}:22" for a in others)
    # Every other host is no jump host at all: nothing sets it, so the role's default (none).
    assert len(seen) == len(outputs["privateIps"])
    for name, result in seen.items():
        if name != "bastion-1":
            assert "is undefined" in str(result["hardening_ssh_jump_targets"]), name


def test_sshd_config_permits_forwarding_only_on_the_jump_host() -> None:
    from tests.conftest import render_template

    template = REPO / "playbooks" / "roles" / "hardening" / "templates" / "sshd_config.j2"
    defaults = yaml.safe_load(
        (REPO / "playbooks" / "roles" / "hardening" / "defaults" / "main.yml").read_text()
    )
    values = {**defaults, "hardening_ssh_user_ca_keys": [], "hardening_ssh_principals": {}}
    plain = render_template(template, values)
    assert "AllowTcpForwarding no" in plain and "AllowTcpForwarding local" not in plain
    targets = ["10.0.1.10:22", "10.0.2.10:22"]
    jump = render_template(template, {**values, "hardening_ssh_jump_targets": targets})
    block = jump.split("Match Group operators", 1)[1]
    assert "AllowTcpForwarding local" in block
    assert "PermitOpen 10.0.1.10:22 10.0.2.10:22" in block
    # The global setting stays closed for everyone else.
    assert "AllowTcpForwarding no" in jump.split("Match Group operators", 1)[0]
