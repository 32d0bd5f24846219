"""The official Tencent Cloud Python SDK against `cvm-operator simulator`.

Run with `hack/python-sdk-test.sh`. The simulator binary comes from $CVM_OPERATOR_BIN
(default: target/debug/cvm-operator relative to the repo root).

Every test starts its own simulator (--time-scale 10) on a free port and drives it with
`tencentcloud-sdk-python-cvm`, over POST (JSON body) and GET (flattened query string),
both signed with TC3-HMAC-SHA256 by the SDK itself. A few tests sign requests by hand
(an independent TC3 implementation, checked against the published test vectors) to send
what the SDK never would: a body or query changed after signing, a forged signature.

pytest.ini turns every warning into an error, so a response field the SDK model does not
know ("... fileds are useless.") fails the test that received it.
"""

import datetime as _dt
import hashlib
import hmac
import http.client
import ipaddress
import json
import os
import re
import subprocess
import time
import types
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tencentcloud.common import abstract_client, credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.cvm.v20170312 import cvm_client, models
from tencentcloud.sts.v20180813 import sts_client, models as sts_models

REPO = Path(__file__).resolve().parents[2]
REGION = "ap-guangzhou"
ZONE = "ap-guangzhou-3"
IMAGE = "img-pi0ii46r"
OTHER_IMAGE = "img-487zeit5"
VPC = "vpc-gz000001"
SUBNET = "subnet-gz000003"
SG = "sg-gz000002"

# A key pair of our own, passed to the simulator by flag, so a developer's real
# TENCENTCLOUD_SECRET_* never matter here.
SIM_ID = "AKIDPYTHONSDK00000000000000000000000"
SIM_KEY = "python-sdk-interop-secret-key-000000"
UNKNOWN_ID = "AKIDUNKNOWNKEY0000000000000000000000"

POLL_S = 0.05  # 20 DescribeInstances/s: under the 40/s limit the simulator enforces
WAIT_S = 15.0
METHODS = ["POST", "GET"]
INSTANCE_ID_RE = re.compile(r"^ins-[0-9a-z]{8}$")
REQUEST_ID_RE = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")
ISO_UTC_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|\+00:00)$")
LISTEN_RE = re.compile(r"^cvm simulator listening on http://127\.0\.0\.1:(\d+)\s*$")


# --------------------------------------------------------------------------- fixtures


class Simulator:
    def __init__(self, proc, port, log_path):
        self.proc = proc
        self.port = port
        self.host = "127.0.0.1:%d" % port
        self.log_path = log_path
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def stats(self):
        with self._opener.open("http://%s/_sim/stats" % self.host, timeout=5) as r:
            assert r.status == 200
            return json.loads(r.read())


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    # The SDK (and requests under it) honour HTTP(S)_PROXY; loopback must not go through one.
    for k in list(os.environ):
        if k.lower() in ("http_proxy", "https_proxy", "all_proxy"):
            monkeypatch.delenv(k)


@pytest.fixture
def sim(request, tmp_path):
    binary = os.environ.get("CVM_OPERATOR_BIN") or str(REPO / "target" / "debug" / "cvm-operator")
    if not os.path.isabs(binary):
        binary = str(REPO / binary)
    assert os.access(binary, os.X_OK), "simulator binary not found: %s (set CVM_OPERATOR_BIN)" % binary
    marker = request.node.get_closest_marker("sim_args")
    extra_args = marker.args if marker else ("--time-scale", "10")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENCENTCLOUD_")}
    env.setdefault("NO_COLOR", "1")
    out_path = tmp_path / "simulator.stdout"
    err_path = tmp_path / "simulator.stderr"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        # stdout goes to a file, never a pipe: the simulator also logs there, and a pipe
        # nobody drains would eventually block it.
        proc = subprocess.Popen(
            [binary, "simulator", "--listen", "127.0.0.1:0", "--sim-secret-id", SIM_ID, "--sim-secret-key", SIM_KEY]
            + list(extra_args),
            stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env)
    try:
        port = None
        deadline = time.monotonic() + 15
        while port is None:
            for line in out_path.read_text(errors="replace").splitlines():
                m = LISTEN_RE.match(line)
                if m:
                    port = int(m.group(1))
                    break
            if port is None:
                if proc.poll() is not None:
                    pytest.fail("simulator exited with %s before listening; stdout:\n%s\nstderr:\n%s"
                                % (proc.returncode, out_path.read_text(errors="replace"),
                                   err_path.read_text(errors="replace")))
                if time.monotonic() > deadline:
                    pytest.fail("simulator printed no 'cvm simulator listening on ...' line in 15 s")
                time.sleep(0.02)
        yield Simulator(proc, port, out_path)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def make_client(sim, method, secret_id=SIM_ID, secret_key=SIM_KEY):
    hp = HttpProfile(protocol="http", endpoint=sim.host, reqMethod=method, reqTimeout=10)
    cp = ClientProfile(httpProfile=hp, signMethod="TC3-HMAC-SHA256")
    return TypeChecked(cvm_client.CvmClient(credential.Credential(secret_id, secret_key), REGION, cp))


_RTYPE_RE = re.compile(r":rtype:\s*(.+?)\s*$", re.M)
_PRIMITIVES = {"str": (str,), "int": (int,), "bool": (bool,), "float": (int, float)}


def check_types(value, rtype, path, mod=models):
    """Check a deserialised value against the SDK's own declared type (`:rtype:` of the
    model property; classes from the service's models module `mod`). The SDK copies
    primitives through unchecked, so a number sent as a string, or a bool as 0/1, would
    otherwise pass unnoticed. None (JSON null) is allowed."""
    if value is None:
        return
    if rtype.startswith("list of "):
        assert isinstance(value, list), "%s: expected %s, got %r" % (path, rtype, value)
        for i, v in enumerate(value):
            check_types(v, rtype[len("list of "):], "%s[%d]" % (path, i), mod)
    elif rtype in _PRIMITIVES:
        ok = isinstance(value, _PRIMITIVES[rtype]) and (rtype == "bool" or not isinstance(value, bool))
        assert ok, "%s: expected %s, got %r" % (path, rtype, value)
    else:
        cls_name = rtype.rsplit(".", 1)[-1].strip("`")
        cls = getattr(mod, cls_name, None)
        assert cls is not None, "%s: unknown SDK type %s" % (path, rtype)
        assert isinstance(value, cls), "%s: expected %s, got %r" % (path, cls_name, value)
        for name, prop in vars(cls).items():
            if isinstance(prop, property) and prop.__doc__:
                m = _RTYPE_RE.search(prop.__doc__)
                if m:
                    check_types(getattr(value, name), m.group(1), "%s.%s" % (path, name), mod)


class TypeChecked:
    """Wraps a service client: every response model it returns is type-checked in depth."""

    def __init__(self, client, mod=models):
        self._client = client
        self._mod = mod

    def __getattr__(self, name):
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def wrapper(*args, **kwargs):
            result = attr(*args, **kwargs)
            if isinstance(result, self._mod.AbstractModel):
                check_types(result, type(result).__name__, type(result).__name__, self._mod)
            return result
        return wrapper


def req(model_cls, **fields):
    """A request model built the documented way: from a JSON string."""
    r = model_cls()
    r.from_json_string(json.dumps(fields))
    return r


def expect_error(fn, code):
    with pytest.raises(TencentCloudSDKException) as ei:
        fn()
    e = ei.value
    assert e.get_code() == code, "expected %s, got %s: %s" % (code, e.get_code(), e.get_message())
    rid = e.get_request_id()
    assert rid and REQUEST_ID_RE.match(rid), "error %s carries no RequestId (got %r)" % (code, rid)
    return e


def assert_request_id(resp):
    assert resp.RequestId and REQUEST_ID_RE.match(resp.RequestId), resp.RequestId


# ------------------------------------------------------------------ instance helpers


def describe_one(client, iid):
    r = models.DescribeInstancesRequest()
    r.InstanceIds = [iid]
    resp = client.DescribeInstances(r)
    assert_request_id(resp)
    assert resp.TotalCount == len(resp.InstanceSet) <= 1, resp.to_json_string()
    return resp.InstanceSet[0] if resp.InstanceSet else None


def wait_for(client, iid, desc, pred, timeout=WAIT_S):
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        inst = describe_one(client, iid)
        snap = None if inst is None else (inst.InstanceState, inst.LatestOperation, inst.LatestOperationState)
        if not seen or seen[-1] != snap:
            seen.append(snap)
        if pred(inst):
            return inst, seen
        if time.monotonic() > deadline:
            pytest.fail("timed out waiting for %s on %s; observed (state, op, op state): %s" % (desc, iid, seen))
        time.sleep(POLL_S)


def settled(state, operation):
    """State reached AND the operation finished (not in its OPERATING tail)."""
    return lambda i: (i is not None and i.InstanceState == state
                      and i.LatestOperation == operation and i.LatestOperationState == "SUCCESS")


def wait_settled(client, iid, state, operation, request_id):
    inst, seen = wait_for(client, iid, "%s after %s" % (state, operation), settled(state, operation))
    assert inst.LatestOperationRequestId == request_id, (inst.LatestOperationRequestId, request_id)
    assert inst.LatestOperationErrorMsg in ("", None)
    return inst, seen


def wait_gone(client, iid):
    return wait_for(client, iid, "absence", lambda i: i is None)


def type_configs(client):
    r = req(models.DescribeInstanceTypeConfigsRequest,
            Filters=[{"Name": "zone", "Values": [ZONE]}, {"Name": "instance-family", "Values": ["S5"]}])
    resp = client.DescribeInstanceTypeConfigs(r)
    assert_request_id(resp)
    return {c.InstanceType: c for c in resp.InstanceTypeConfigSet}


def run_request(method, token, name, count=1):
    return req(models.RunInstancesRequest,
               ClientToken=token,
               Placement={"Zone": ZONE, "ProjectId": 0},
               ImageId=IMAGE,
               InstanceChargeType="POSTPAID_BY_HOUR",
               InstanceType="S5.SMALL1",
               InstanceCount=count,
               InstanceName=name,
               SystemDisk={"DiskType": "CLOUD_PREMIUM", "DiskSize": 50},
               VirtualPrivateCloud={"VpcId": VPC, "SubnetId": SUBNET},
               SecurityGroupIds=[SG],
               InternetAccessible={"InternetChargeType": "TRAFFIC_POSTPAID_BY_HOUR",
                                   "InternetMaxBandwidthOut": 1, "PublicIpAssigned": True},
               TagSpecification=[{"ResourceType": "instance",
                                  "Tags": [{"Key": "sdk-interop", "Value": method.lower()},
                                           {"Key": "owner", "Value": "pytest"}]}])


def launch(client, method, name, token=None, count=1):
    resp = client.RunInstances(run_request(method, token or "tok-" + uuid.uuid4().hex, name, count))
    assert_request_id(resp)
    assert len(resp.InstanceIdSet) == count, resp.to_json_string()
    for iid in resp.InstanceIdSet:
        assert INSTANCE_ID_RE.match(iid), iid
    return resp


# ---------------------------------------------------------------------------- tests


def test_type_check_catches_mistyped_fields():
    """The other guard: fields the SDK knows but the server sent with the wrong JSON type."""
    resp = models.DescribeInstancesResponse()
    resp._deserialize({"TotalCount": 1, "RequestId": "r", "InstanceSet": [
        {"InstanceId": "ins-abcdefgh", "CPU": "1", "Placement": {"Zone": ZONE}}]})
    with pytest.raises(AssertionError, match=r"InstanceSet\[0\]\.CPU: expected int"):
        check_types(resp, "DescribeInstancesResponse", "DescribeInstancesResponse")
    resp.InstanceSet[0].CPU = 1
    resp.InstanceSet[0].DisableApiTermination = 0
    with pytest.raises(AssertionError, match="DisableApiTermination: expected bool"):
        check_types(resp, "DescribeInstancesResponse", "DescribeInstancesResponse")
    resp.InstanceSet[0].DisableApiTermination = False
    check_types(resp, "DescribeInstancesResponse", "DescribeInstancesResponse")


def test_warnings_are_errors():
    """The guard this suite relies on: an unknown response field is fatal."""
    with pytest.raises(UserWarning, match="useless"):
        models.ZoneInfo()._deserialize({"Zone": ZONE, "NoSuchField": 1})


@pytest.mark.parametrize("method", METHODS)
def test_instance_lifecycle(sim, method):
    c = make_client(sim, method)
    configs = type_configs(c)
    small, medium = configs["S5.SMALL1"], configs["S5.MEDIUM2"]

    # --- RunInstances -> PENDING (visible at once) -> RUNNING / SUCCESS
    name = "sdk-%s-initial" % method.lower()
    run = launch(c, method, name)
    iid = run.InstanceIdSet[0]
    first = describe_one(c, iid)
    assert first is not None, "new instance not visible right after RunInstances"
    assert first.InstanceState in ("PENDING", "RUNNING")
    inst, seen = wait_settled(c, iid, "RUNNING", "RunInstances", run.RequestId)

    assert inst.InstanceId == iid
    assert inst.Uuid
    assert inst.InstanceName == name
    assert inst.InstanceType == "S5.SMALL1"
    assert (inst.CPU, inst.Memory) == (small.CPU, small.Memory) == (1, 1)
    assert inst.ImageId == IMAGE
    assert inst.OsName and "ubuntu" in inst.OsName.lower()
    assert inst.InstanceChargeType == "POSTPAID_BY_HOUR"
    assert inst.Placement.Zone == ZONE and inst.Placement.ProjectId == 0
    assert inst.SystemDisk.DiskType == "CLOUD_PREMIUM" and inst.SystemDisk.DiskSize == 50
    assert inst.VirtualPrivateCloud.VpcId == VPC and inst.VirtualPrivateCloud.SubnetId == SUBNET
    assert inst.SecurityGroupIds == [SG]
    assert inst.InternetAccessible.InternetMaxBandwidthOut == 1
    assert inst.PrivateIpAddresses, "no private IP"
    assert inst.PublicIpAddresses, "no public IP although bandwidth 1 and PublicIpAssigned"
    for ip in inst.PrivateIpAddresses + inst.PublicIpAddresses:
        ipaddress.IPv4Address(ip)
    assert ipaddress.IPv4Address(inst.PrivateIpAddresses[0]).is_private
    assert {(t.Key, t.Value) for t in inst.Tags} == {("sdk-interop", method.lower()), ("owner", "pytest")}
    assert ISO_UTC_RE.match(inst.CreatedTime), inst.CreatedTime
    assert inst.ExpiredTime is None  # postpaid
    assert inst.RestrictState == "NORMAL"
    st = sim.stats()
    assert st["instances"] == 1 and st["states"] == {"RUNNING": 1}, st

    # --- StopInstances -> STOPPED
    r = models.StopInstancesRequest()
    r.InstanceIds = [iid]
    r.StopType = "SOFT"
    stop = c.StopInstances(r)
    assert_request_id(stop)
    wait_settled(c, iid, "STOPPED", "StopInstances", stop.RequestId)

    # --- ResetInstancesType (needs STOPPED) -> S5.MEDIUM2, and RUNNING by itself
    #     ("after the change the instance shows as running", api.json)
    r = models.ResetInstancesTypeRequest()
    r.InstanceIds = [iid]
    r.InstanceType = "S5.MEDIUM2"
    reset = c.ResetInstancesType(r)
    assert_request_id(reset)
    inst, _ = wait_settled(c, iid, "RUNNING", "ResetInstancesType", reset.RequestId)
    assert inst.InstanceType == "S5.MEDIUM2"
    assert (inst.CPU, inst.Memory) == (medium.CPU, medium.Memory) == (2, 2)

    # --- StopInstances again, then StartInstances -> RUNNING
    stop = c.StopInstances(req(models.StopInstancesRequest, InstanceIds=[iid], StopType="HARD"))
    wait_settled(c, iid, "STOPPED", "StopInstances", stop.RequestId)
    r = models.StartInstancesRequest()
    r.InstanceIds = [iid]
    start = c.StartInstances(r)
    assert_request_id(start)
    inst, _ = wait_settled(c, iid, "RUNNING", "StartInstances", start.RequestId)
    assert inst.InstanceType == "S5.MEDIUM2" and (inst.CPU, inst.Memory) == (2, 2)

    # --- ResetInstancesInternetMaxBandwidth -> 5
    r = req(models.ResetInstancesInternetMaxBandwidthRequest,
            InstanceIds=[iid], InternetAccessible={"InternetMaxBandwidthOut": 5})
    bw = c.ResetInstancesInternetMaxBandwidth(r)
    assert_request_id(bw)
    inst, _ = wait_settled(c, iid, "RUNNING", "ResetInstancesInternetMaxBandwidth", bw.RequestId)
    assert inst.InternetAccessible.InternetMaxBandwidthOut == 5
    assert inst.PublicIpAddresses

    # --- ModifyInstancesAttribute InstanceName (non-ASCII: \u escapes in POST, UTF-8 %XX in GET)
    new_name = "sdk-互操作-%s" % method.lower()
    r = models.ModifyInstancesAttributeRequest()
    r.InstanceIds = [iid]
    r.InstanceName = new_name
    mod = c.ModifyInstancesAttribute(r)
    assert_request_id(mod)
    inst, _ = wait_settled(c, iid, "RUNNING", "ModifyInstancesAttribute", mod.RequestId)
    assert inst.InstanceName == new_name
    # Everything changed earlier is still there.
    assert inst.InstanceType == "S5.MEDIUM2" and inst.InternetAccessible.InternetMaxBandwidthOut == 5

    # --- DescribeInstances with Filters
    def find(filters, **extra):
        resp = c.DescribeInstances(req(models.DescribeInstancesRequest, Filters=filters, **extra))
        assert_request_id(resp)
        return resp

    by_tag = find([{"Name": "tag:sdk-interop", "Values": [method.lower()]}])
    assert by_tag.TotalCount == 1 and [i.InstanceId for i in by_tag.InstanceSet] == [iid]
    by_name = find([{"Name": "instance-name", "Values": [new_name]}])
    assert by_name.TotalCount == 1 and [i.InstanceId for i in by_name.InstanceSet] == [iid]
    both = find([{"Name": "tag:sdk-interop", "Values": ["nope", method.lower()]},
                 {"Name": "instance-name", "Values": [new_name]}])
    assert both.TotalCount == 1 and both.InstanceSet[0].InstanceName == new_name
    none = find([{"Name": "tag:sdk-interop", "Values": ["nope"]}])
    assert none.TotalCount == 0 and none.InstanceSet == []
    old_name = find([{"Name": "instance-name", "Values": [name]}])
    assert old_name.TotalCount == 0

    # --- DescribeInstances with Offset/Limit
    page = c.DescribeInstances(req(models.DescribeInstancesRequest, Offset=0, Limit=1))
    assert page.TotalCount == 1 and len(page.InstanceSet) == 1 and page.InstanceSet[0].InstanceId == iid
    past = c.DescribeInstances(req(models.DescribeInstancesRequest, Offset=1, Limit=1))
    assert past.TotalCount == 1 and past.InstanceSet == []

    # --- TerminateInstances -> gone
    r = models.TerminateInstancesRequest()
    r.InstanceIds = [iid]
    term = c.TerminateInstances(r)
    assert_request_id(term)
    _, seen = wait_gone(c, iid)
    assert all(s is None or s[0] in ("RUNNING", "TERMINATING") for s in seen), seen
    assert sim.stats()["instances"] == 0
    r = models.StartInstancesRequest()
    r.InstanceIds = [iid]
    expect_error(lambda: c.StartInstances(r), "InvalidInstanceId.NotFound")


@pytest.mark.parametrize("method", METHODS)
def test_client_token_replay(sim, method):
    c = make_client(sim, method)
    token = "sdk-interop-%s-%s" % (method.lower(), uuid.uuid4().hex[:16])
    first = launch(c, method, "replay", token=token)
    assert sim.stats()["instances"] == 1

    again = c.RunInstances(run_request(method, token, "replay"))  # while still PENDING / OPERATING
    assert again.InstanceIdSet == first.InstanceIdSet
    assert again.RequestId != first.RequestId
    assert sim.stats()["instances"] == 1

    iid = first.InstanceIdSet[0]
    wait_settled(c, iid, "RUNNING", "RunInstances", first.RequestId)
    late = c.RunInstances(run_request(method, token, "replay"))  # after it settled
    assert late.InstanceIdSet == first.InstanceIdSet
    st = sim.stats()
    assert st["instances"] == 1, st
    assert st["calls"].get("RunInstances") == 3, st

    # A different token is a different purchase.
    other = launch(c, method, "replay", token=token + "-2")
    assert other.InstanceIdSet != first.InstanceIdSet
    assert sim.stats()["instances"] == 2


@pytest.mark.parametrize("method", METHODS)
def test_pagination(sim, method):
    c = make_client(sim, method)
    run = launch(c, method, "sdk-page", count=3)
    ids = run.InstanceIdSet
    assert len(set(ids)) == 3
    for iid in ids:
        wait_settled(c, iid, "RUNNING", "RunInstances", run.RequestId)

    got = []
    for offset, expect in ((0, 2), (2, 1), (4, 0)):
        page = c.DescribeInstances(req(models.DescribeInstancesRequest, Offset=offset, Limit=2))
        assert page.TotalCount == 3, page.to_json_string()
        assert len(page.InstanceSet) == expect, (offset, [i.InstanceId for i in page.InstanceSet])
        got += [i.InstanceId for i in page.InstanceSet]
    assert sorted(got) == sorted(ids)

    by_ids = c.DescribeInstances(req(models.DescribeInstancesRequest, InstanceIds=ids[:2]))
    assert by_ids.TotalCount == 2 and {i.InstanceId for i in by_ids.InstanceSet} == set(ids[:2])

    term = c.TerminateInstances(req(models.TerminateInstancesRequest, InstanceIds=ids))
    assert_request_id(term)
    for iid in ids:
        wait_gone(c, iid)
    assert sim.stats()["instances"] == 0


@pytest.mark.parametrize("method", METHODS)
def test_operation_rules(sim, method):
    """Semantics from the brief: ResetInstancesType needs STOPPED or ForceStop=true;
    ModifyInstancesAttribute takes exactly one attribute; unknown ids are NotFound."""
    c = make_client(sim, method)
    run = launch(c, method, "sdk-rules")
    iid = run.InstanceIdSet[0]
    wait_settled(c, iid, "RUNNING", "RunInstances", run.RequestId)

    expect_error(lambda: c.ResetInstancesType(
        req(models.ResetInstancesTypeRequest, InstanceIds=[iid], InstanceType="S5.MEDIUM2")),
        "UnsupportedOperation.InstanceStateRunning")

    with pytest.raises(TencentCloudSDKException) as ei:
        c.ModifyInstancesAttribute(req(models.ModifyInstancesAttributeRequest, InstanceIds=[iid],
                                       InstanceName="two-attrs", DisableApiTermination=False))
    assert ei.value.get_code().startswith("InvalidParameter"), ei.value
    assert ei.value.get_request_id()
    assert describe_one(c, iid).InstanceName == "sdk-rules"

    expect_error(lambda: c.StopInstances(req(models.StopInstancesRequest, InstanceIds=["ins-00000000"])),
                 "InvalidInstanceId.NotFound")
    assert describe_one(c, "ins-00000000") is None

    # ForceStop is a boolean: in GET the SDK sends it as `ForceStop=True` (Python's str()).
    r = req(models.ResetInstancesTypeRequest, InstanceIds=[iid], InstanceType="S5.SMALL2", ForceStop=True)
    reset = c.ResetInstancesType(r)
    assert_request_id(reset)
    inst, seen = wait_for(c, iid, "ResetInstancesType with ForceStop",
                          lambda i: i is not None and i.LatestOperation == "ResetInstancesType"
                          and i.LatestOperationState == "SUCCESS" and i.InstanceState in ("RUNNING", "STOPPED"))
    assert inst.InstanceType == "S5.SMALL2" and (inst.CPU, inst.Memory) == (1, 2), seen


@pytest.mark.parametrize("method", METHODS)
def test_in_place_changes(sim, method):
    """The in-place actions as the SDK sends them: key pairs need STOPPED or ForceStop
    (a bool, `True` in a GET query), a reinstall boots, a disk grows online, the types
    one may change to and the price of a change deserialise into the SDK's models."""
    c = make_client(sim, method)
    run = launch(c, method, "sdk-in-place")
    iid = run.InstanceIdSet[0]
    wait_settled(c, iid, "RUNNING", "RunInstances", run.RequestId)

    keys = dict(InstanceIds=[iid], KeyIds=["skey-gz000002"])
    expect_error(lambda: c.AssociateInstancesKeyPairs(req(models.AssociateInstancesKeyPairsRequest, **keys)),
                 "UnsupportedOperation.InstanceStateRunning")
    assoc = c.AssociateInstancesKeyPairs(req(models.AssociateInstancesKeyPairsRequest, ForceStop=True, **keys))
    inst, seen = wait_settled(c, iid, "RUNNING", "AssociateInstancesKeyPairs", assoc.RequestId)
    assert inst.LoginSettings.KeyIds == ["skey-gz000002"], seen
    stopped = {"STOPPING", "STOPPED", "STARTING"} & {state for state, _, _ in seen}
    assert stopped, "ForceStop stops, then starts: %s" % seen

    grow = c.ResizeInstanceDisks(req(models.ResizeInstanceDisksRequest, InstanceId=iid,
                                     SystemDisk={"DiskSize": 80}, ResizeOnline=True))
    inst, _ = wait_settled(c, iid, "RUNNING", "ResizeInstanceDisks", grow.RequestId)
    assert inst.SystemDisk.DiskSize == 80

    types = c.DescribeInstancesModification(req(models.DescribeInstancesModificationRequest,
                                                InstanceIds=[iid],
                                                Filters=[{"Name": "status", "Values": ["SELL"]}]))
    names = {t.InstanceTypeConfig.InstanceType for t in types.InstanceTypeConfigStatusSet}
    assert "S5.MEDIUM4" in names and "S5.SMALL1" not in names, names
    price = c.InquiryPriceResetInstancesType(req(models.InquiryPriceResetInstancesTypeRequest,
                                                 InstanceIds=[iid], InstanceType="S5.MEDIUM4"))
    assert price.Price.InstancePrice.UnitPrice == 0.25 and price.Price.BandwidthPrice is None

    reset = c.ResetInstance(req(models.ResetInstanceRequest, InstanceId=iid, ImageId=OTHER_IMAGE,
                                LoginSettings={"Password": "Sdk-Passw0rd"}))
    inst, _ = wait_settled(c, iid, "RUNNING", "ResetInstance", reset.RequestId)
    assert inst.ImageId == OTHER_IMAGE and inst.LoginSettings.KeyIds is None
    assert "Sdk-Passw0rd" not in inst.to_json_string()

    project = c.ModifyInstancesProject(req(models.ModifyInstancesProjectRequest, InstanceIds=[iid],
                                           ProjectId=1000001))
    inst, _ = wait_settled(c, iid, "RUNNING", "ModifyInstancesProject", project.RequestId)
    assert inst.Placement.ProjectId == 1000001


class TagClient(abstract_client.AbstractClient):
    """The Tag service (no SDK package of its own is installed: the generic client
    signs for service `tag`, version 2018-08-13, like the real one)."""
    _apiVersion = "2018-08-13"
    _endpoint = "tag.tencentcloudapi.com"
    _service = "tag"


@pytest.mark.parametrize("method", METHODS)
def test_tag_service(sim, method):
    """ModifyResourceTags on `qcs::cvm:<region>:uin/<uin>:instance/<id>`, signed for the
    Tag service; the change shows in DescribeInstances."""
    c = make_client(sim, method)
    run = launch(c, method, "sdk-tags")
    iid = run.InstanceIdSet[0]
    hp = HttpProfile(protocol="http", endpoint=sim.host, reqMethod=method, reqTimeout=10)
    cp = ClientProfile(httpProfile=hp, signMethod="TC3-HMAC-SHA256")
    tags = TagClient(credential.Credential(SIM_ID, SIM_KEY), REGION, cp)
    wrong = "qcs::cvm:%s:uin/100000000077:instance/%s" % (REGION, iid)
    with pytest.raises(TencentCloudSDKException) as ei:
        tags.call_json("ModifyResourceTags", {"Resource": wrong,
                                              "ReplaceTags": [{"TagKey": "env", "TagValue": "prod"}]})
    assert ei.value.get_code() == "InvalidParameterValue.ResourceDescriptionError", ei.value
    # The caller's uin, as STS tells it (the operator does the same).
    who = sts_client.StsClient(credential.Credential(SIM_ID, SIM_KEY), REGION, cp)
    uin = who.GetCallerIdentity(sts_models.GetCallerIdentityRequest()).AccountId
    resource = "qcs::cvm:%s:uin/%s:instance/%s" % (REGION, uin, iid)
    out = tags.call_json("ModifyResourceTags", {"Resource": resource,
                                                "ReplaceTags": [{"TagKey": "env", "TagValue": "prod"}],
                                                "DeleteTags": [{"TagKey": "owner"}]})
    assert REQUEST_ID_RE.match(out["Response"]["RequestId"]), out
    got = {t.Key: t.Value for t in describe_one(c, iid).Tags}
    assert got == {"sdk-interop": method.lower(), "env": "prod"}, got


@pytest.mark.parametrize("method", METHODS)
def test_every_schema_member_is_accepted(sim, method):
    """Valid members the simulator does not model are accepted, not UnknownParameter
    (the SDK's models have every member of the official schema); names outside the
    schema are refused at any depth; a spot bid needs its MaxPrice."""
    c = make_client(sim, method)
    full = run_request(method, "tok-" + uuid.uuid4().hex, "sdk-members")
    for name, value in {"EnableJumboFrame": True, "PartitionNumber": 1, "DedicatedClusterId": "",
                        "CpuTopology": {"CoreCount": 1, "ThreadPerCore": 1}, "ChcIds": [],
                        "DryRun": True}.items():
        setattr(full, name, value)
    full.SystemDisk.Encrypt = False
    full.SystemDisk.KmsKeyId = ""
    full.InternetAccessible.IPv4AddressType = "WanIP"
    expect_error(lambda: c.RunInstances(full), "DryRunOperation")

    spot = run_request(method, "tok-" + uuid.uuid4().hex, "sdk-spot")
    spot.InstanceChargeType = "SPOTPAID"
    spot.InstanceMarketOptions = models.InstanceMarketOptionsRequest()
    spot.InstanceMarketOptions.MarketType = "spot"
    spot.InstanceMarketOptions.SpotOptions = models.SpotMarketOptions()
    spot.InstanceMarketOptions.SpotOptions.SpotInstanceType = "one-time"
    expect_error(lambda: c.RunInstances(spot), "MissingParameter")

    run = launch(c, method, "sdk-members-{R:7,F:2}", count=2)
    names = sorted(describe_one(c, iid).InstanceName for iid in run.InstanceIdSet)
    assert names == ["sdk-members-07", "sdk-members-08"], names
    iid = run.InstanceIdSet[0]
    inst, _ = wait_settled(c, iid, "RUNNING", "RunInstances", run.RequestId)
    assert inst.HostName and inst.HostName.startswith("VM-"), inst.HostName
    jumbo = c.ModifyInstancesAttribute(req(models.ModifyInstancesAttributeRequest, InstanceIds=[iid],
                                           EnableJumboFrame=False))
    assert_request_id(jumbo)

    expect_error(lambda: c.call("DescribeInstances",
                                {"Filters": [{"Name": "zone", "Values": [ZONE], "Colour": "x"}]}),
                 "UnknownParameter")


@pytest.mark.parametrize("method", METHODS)
# Real time with short phases, so the OPERATING windows are wide enough (0.6-0.9 s) to
# hit reliably from here even on a busy machine.
@pytest.mark.sim_args("--time-scale", "1", "--launch-ms", "200", "--modify-ms", "300",
                      "--operation-tail-ms", "600")
def test_operation_in_progress(sim, method):
    """While LatestOperationState is OPERATING (including the tail after the state is
    already final) mutations get OperationDenied.InstanceOperationInProgress; this is
    the packer#9054 race that waiting on LatestOperationState avoids."""
    c = make_client(sim, method)
    run = launch(c, method, "sdk-busy")
    iid = run.InstanceIdSet[0]
    terminate = req(models.TerminateInstancesRequest, InstanceIds=[iid])

    inst, seen = wait_for(c, iid, "RUNNING", lambda i: i is not None and i.InstanceState == "RUNNING")
    assert inst.LatestOperation == "RunInstances"
    assert inst.LatestOperationState == "OPERATING", "no OPERATING tail after PENDING -> RUNNING: %s" % seen
    expect_error(lambda: c.TerminateInstances(terminate), "OperationDenied.InstanceOperationInProgress")
    wait_settled(c, iid, "RUNNING", "RunInstances", run.RequestId)

    mod = c.ModifyInstancesAttribute(req(models.ModifyInstancesAttributeRequest,
                                         InstanceIds=[iid], InstanceName="sdk-busy-1"))
    inst = describe_one(c, iid)
    assert (inst.InstanceState, inst.LatestOperation, inst.LatestOperationState) == \
        ("RUNNING", "ModifyInstancesAttribute", "OPERATING")
    expect_error(lambda: c.ModifyInstancesAttribute(req(models.ModifyInstancesAttributeRequest,
                                                        InstanceIds=[iid], InstanceName="sdk-busy-2")),
                 "OperationDenied.InstanceOperationInProgress")
    inst, _ = wait_settled(c, iid, "RUNNING", "ModifyInstancesAttribute", mod.RequestId)
    assert inst.InstanceName == "sdk-busy-1"  # the denied rename did not happen

    term = c.TerminateInstances(terminate)
    assert_request_id(term)
    wait_gone(c, iid)


@pytest.mark.parametrize("method", METHODS)
def test_catalogue_reads(sim, method):
    c = make_client(sim, method)

    zones = c.DescribeZones(models.DescribeZonesRequest())
    assert_request_id(zones)
    assert zones.TotalCount == len(zones.ZoneSet)
    available = {z.Zone for z in zones.ZoneSet if z.ZoneState == "AVAILABLE"}
    assert {"ap-guangzhou-3", "ap-guangzhou-4", "ap-guangzhou-6"} <= available
    for z in zones.ZoneSet:
        assert z.Zone.startswith(REGION + "-") and z.ZoneId.isdigit() and z.ZoneName

    images = c.DescribeImages(req(models.DescribeImagesRequest, ImageIds=[IMAGE, OTHER_IMAGE]))
    assert_request_id(images)
    assert images.TotalCount == 2 and {i.ImageId for i in images.ImageSet} == {IMAGE, OTHER_IMAGE}
    ubuntu = next(i for i in images.ImageSet if i.ImageId == IMAGE)
    assert "ubuntu" in ubuntu.OsName.lower() and ubuntu.ImageState == "NORMAL"
    assert ubuntu.ImageType in ("PUBLIC_IMAGE", "PRIVATE_IMAGE", "SHARED_IMAGE")
    assert ubuntu.Architecture in ("x86_64", "arm", "i386")
    public = c.DescribeImages(req(models.DescribeImagesRequest,
                                  Filters=[{"Name": "image-type", "Values": ["PUBLIC_IMAGE"]}], Offset=0, Limit=1))
    assert len(public.ImageSet) == 1 and public.TotalCount >= 2
    assert public.ImageSet[0].ImageType == "PUBLIC_IMAGE"
    expect_error(lambda: c.DescribeImages(req(models.DescribeImagesRequest, ImageIds=[IMAGE],
                                              Filters=[{"Name": "image-type", "Values": ["PUBLIC_IMAGE"]}])),
                 "InvalidParameter.InvalidParameterCoexistImageIdsFilters")

    configs = type_configs(c)
    for t, (cpu, mem) in {"S5.SMALL1": (1, 1), "S5.SMALL2": (1, 2),
                          "S5.MEDIUM2": (2, 2), "S5.MEDIUM4": (2, 4)}.items():
        assert (configs[t].CPU, configs[t].Memory) == (cpu, mem), t
    for cfg in configs.values():
        assert cfg.Zone == ZONE and cfg.InstanceFamily == "S5"
        assert isinstance(cfg.CPU, int) and isinstance(cfg.Memory, int)

    def price(instance_type):
        resp = c.InquiryPriceRunInstances(req(
            models.InquiryPriceRunInstancesRequest,
            Placement={"Zone": ZONE}, ImageId=IMAGE, InstanceType=instance_type,
            InstanceChargeType="POSTPAID_BY_HOUR",
            InternetAccessible={"InternetChargeType": "TRAFFIC_POSTPAID_BY_HOUR", "InternetMaxBandwidthOut": 1}))
        assert_request_id(resp)
        return resp.Price

    small = price("S5.SMALL1")
    assert small.InstancePrice.ChargeUnit == "HOUR"
    assert isinstance(small.InstancePrice.UnitPrice, (int, float)) and small.InstancePrice.UnitPrice > 0
    assert small.BandwidthPrice is not None and small.BandwidthPrice.ChargeUnit in ("GB", "HOUR")
    assert price("S5.MEDIUM4").InstancePrice.UnitPrice > small.InstancePrice.UnitPrice


@pytest.mark.parametrize("method", METHODS)
def test_auth_errors(sim, method):
    good = make_client(sim, method)
    assert good.DescribeZones(models.DescribeZonesRequest()).TotalCount > 0

    wrong_key = make_client(sim, method, secret_key=SIM_KEY + "x")
    expect_error(lambda: wrong_key.DescribeZones(models.DescribeZonesRequest()), "AuthFailure.SignatureFailure")

    unknown = make_client(sim, method, secret_id=UNKNOWN_ID)
    expect_error(lambda: unknown.DescribeZones(models.DescribeZonesRequest()), "AuthFailure.SecretIdNotFound")

    expect_error(lambda: good.call("DescribeNoSuchThing", {}), "InvalidAction")

    st = sim.stats()
    assert st["instances"] == 0


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("skew_s,code", [(-600, "AuthFailure.SignatureExpire"),
                                         (+600, "AuthFailure.SignatureExpire"),
                                         (-120, None)])
def test_timestamp_window(sim, monkeypatch, method, skew_s, code):
    """The SDK stamps X-TC-Timestamp (and the scope date) from abstract_client's `time`."""
    real = time.time
    monkeypatch.setattr(abstract_client, "time", types.SimpleNamespace(time=lambda: real() + skew_s))
    c = make_client(sim, method)
    if code is None:
        assert c.DescribeZones(models.DescribeZonesRequest()).TotalCount > 0
    else:
        expect_error(lambda: c.DescribeZones(models.DescribeZonesRequest()), code)


# ----------------------------------------------------------- hand-signed requests


def _hmac(key, msg):
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def tc3_authorization(secret_id, secret_key, method, host, content_type, query, body, timestamp, service="cvm"):
    """TC3-HMAC-SHA256 as in cvm-api.md §1.4-1.6, written independently of the SDK."""
    date = _dt.datetime.fromtimestamp(timestamp, _dt.timezone.utc).strftime("%Y-%m-%d")
    canonical = "\n".join([method, "/", query,
                           "content-type:%s\nhost:%s\n" % (content_type, host),
                           "content-type;host",
                           hashlib.sha256(body).hexdigest()])
    scope = "%s/%s/tc3_request" % (date, service)
    to_sign = "\n".join(["TC3-HMAC-SHA256", str(timestamp), scope,
                         hashlib.sha256(canonical.encode("utf-8")).hexdigest()])
    k = _hmac(("TC3" + secret_key).encode("utf-8"), date)
    k = _hmac(k, service)
    k = _hmac(k, "tc3_request")
    sig = hmac.new(k, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    return "TC3-HMAC-SHA256 Credential=%s/%s, SignedHeaders=content-type;host, Signature=%s" % (
        secret_id, scope, sig)


def test_tc3_reference_vectors():
    """Our signer reproduces cvm-api.md §1.8 A (official doc) and C (Python SDK)."""
    sid, key, ts, host = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE", "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE", 1551113065, \
        "cvm.tencentcloudapi.com"
    body = b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
    a = tc3_authorization(sid, key, "POST", host, "application/json; charset=utf-8", "", body, ts)
    assert a.endswith("Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"), a
    assert "Credential=%s/2019-02-25/cvm/tc3_request," % sid in a
    c_post = tc3_authorization(sid, key, "POST", host, "application/json", "", body, ts)
    assert c_post.endswith("683bd0b53659853c39699162253251192320a09b3937e27bf8e08a559b1465b8")
    c_get = tc3_authorization(sid, key, "GET", host, "application/x-www-form-urlencoded",
                              "Limit=10&Offset=0", b"", ts)
    assert c_get.endswith("9867b291561db17491c01f0d7f06be3ccd45e91ecd3ce5434330e00ece036f64")


def send_raw(sim, method, action, *, signed_body=b"", sent_body=None, signed_query="", sent_query=None,
             content_type=None, signed_host=None, sent_host=None, timestamp=None, mangle_sig=False):
    """Sign one thing, optionally send another. Returns (HTTP status, Content-Type, JSON)."""
    content_type = content_type or ("application/json" if method == "POST" else "application/x-www-form-urlencoded")
    timestamp = int(time.time()) if timestamp is None else timestamp
    signed_host = signed_host or sim.host
    auth = tc3_authorization(SIM_ID, SIM_KEY, method, signed_host, content_type, signed_query, signed_body, timestamp)
    if mangle_sig:
        auth = auth[:-1] + ("0" if auth[-1] != "0" else "1")
    sent_body = signed_body if sent_body is None else sent_body
    sent_query = signed_query if sent_query is None else sent_query
    headers = {"Host": sent_host or signed_host, "Content-Type": content_type, "Authorization": auth,
               "X-TC-Action": action, "X-TC-Version": "2017-03-12", "X-TC-Timestamp": str(timestamp),
               "X-TC-Region": REGION, "X-TC-Language": "en-US"}
    conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=10)
    try:
        conn.request(method, "/" + ("?" + sent_query if sent_query else ""),
                     body=sent_body if method == "POST" else None, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type"), json.loads(resp.read())
    finally:
        conn.close()


def assert_raw_error(result, code):
    status, ctype, doc = result
    assert status == 200, "API errors come back with HTTP 200, got %s" % status
    assert ctype == "application/json", "Content-Type must be exactly application/json, got %r" % ctype
    err = doc["Response"].get("Error")
    assert err and err["Code"] == code, doc
    assert err.get("Message")
    assert REQUEST_ID_RE.match(doc["Response"].get("RequestId", "")), doc


def assert_raw_ok(result):
    status, ctype, doc = result
    assert status == 200 and ctype == "application/json", result
    assert "Error" not in doc["Response"], doc
    assert REQUEST_ID_RE.match(doc["Response"]["RequestId"])
    return doc["Response"]


def test_hand_signed_requests(sim):
    body = json.dumps({"Offset": 0, "Limit": 1}).encode()
    query = urlencode({"Offset": 0, "Limit": 1})

    # Controls: correctly signed requests are accepted (so the failures below are the tampering).
    assert "InstanceSet" in assert_raw_ok(send_raw(sim, "POST", "DescribeInstances", signed_body=body))
    assert "InstanceSet" in assert_raw_ok(send_raw(sim, "GET", "DescribeInstances", signed_query=query))
    assert "ZoneSet" in assert_raw_ok(send_raw(sim, "POST", "DescribeZones", signed_body=b"{}",
                                               content_type="application/json; charset=utf-8"))
    # Go-style compact JSON and sorted query keys are signed as sent, too.
    assert_raw_ok(send_raw(sim, "POST", "DescribeInstances", signed_body=b'{"Limit":1,"Offset":0}'))
    assert_raw_ok(send_raw(sim, "GET", "DescribeInstances", signed_query="Limit=1&Offset=0"))

    tampered = json.dumps({"Offset": 0, "Limit": 2}).encode()
    assert_raw_error(send_raw(sim, "POST", "DescribeInstances", signed_body=body, sent_body=tampered),
                     "AuthFailure.SignatureFailure")
    assert_raw_error(send_raw(sim, "GET", "DescribeInstances", signed_query=query,
                              sent_query=urlencode({"Offset": 0, "Limit": 2})),
                     "AuthFailure.SignatureFailure")
    assert_raw_error(send_raw(sim, "POST", "DescribeInstances", signed_body=body, mangle_sig=True),
                     "AuthFailure.SignatureFailure")
    assert_raw_error(send_raw(sim, "GET", "DescribeInstances", signed_query=query, mangle_sig=True),
                     "AuthFailure.SignatureFailure")
    assert_raw_error(send_raw(sim, "POST", "DescribeInstances", signed_body=body,
                              signed_host="localhost:%d" % sim.port, sent_host=sim.host),
                     "AuthFailure.SignatureFailure")
    assert_raw_error(send_raw(sim, "POST", "DescribeInstances", signed_body=body,
                              timestamp=int(time.time()) - 3600),
                     "AuthFailure.SignatureExpire")
    # A mutation whose body was changed after signing must not take effect.
    run = json.dumps({"Placement": {"Zone": ZONE}, "ImageId": IMAGE, "InstanceType": "S5.SMALL1"}).encode()
    assert_raw_error(send_raw(sim, "POST", "RunInstances", signed_body=run,
                              sent_body=run.replace(b"S5.SMALL1", b"S5.LARGE8")),
                     "AuthFailure.SignatureFailure")
    assert sim.stats()["instances"] == 0
    assert_raw_error(send_raw(sim, "POST", "NoSuchAction", signed_body=b"{}"), "InvalidAction")
