"""The evaluator (hetkv_opt.model.evaluate) against docs/model.md sections 2-4.

Three layers:
- hand-computed cases, one per term of section 4, numbers derived in the comments;
- an independent slow reference evaluator written from docs/model.md (loops, and the inclusive
  read split found by trying every breakpoint), compared on random schedules;
- mutation tests: a valid schedule corrupted in one way must be refused, with a message
  naming the item / epoch / tier.
"""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hetkv_opt.testing import HypothesisDraw, build_instance, build_residency, instances_with_residency  # noqa: E402

from hetkv_opt.model.evaluate import evaluate  # noqa: E402
from hetkv_opt.model.instance import make_instance, tiny_instance  # noqa: E402
from hetkv_opt.model.schedule import (Schedule, check_structure, residency_matrix,  # noqa: E402
                                schedule_from_residency)

HYP = settings(max_examples=60, deadline=None, database=None)


def inst_(tiers, sizes, E, reads=(), writes=(), **kw):
    """Instance from (epoch, item, bytes) triples."""
    def cols(triples):
        t = list(triples)
        return tuple(list(c) for c in zip(*t)) if t else ((), (), ())
    return make_instance(name="hand", tiers=tiers, size_bytes=sizes, num_epochs=E,
                         reads=cols(reads), writes=cols(writes), **kw)


def run(inst, rho):
    """Evaluate a dense residency (use -1 or anything outside an item's life)."""
    rho = np.where(np.asarray(rho) < 0, 0, np.asarray(rho))
    return evaluate(inst, schedule_from_residency(inst, rho))


def hbm(cap=None, bw=4.0):
    return {"name": "hbm", "capacity_bytes": cap, "bandwidth_Bps": bw}


def dram(cap=None, bw=1.0, lr=None, lw=None, name="dram"):
    return {"name": name, "capacity_bytes": cap, "bandwidth_Bps": bw,
            "link_read_Bps": lr, "link_write_Bps": lw}


# ============================================================ hand-computed: every term

def test_device_term_reads():
    # one item (3 B) read whole in epoch 0; hbm 4 B/s, dram 1 B/s, no links
    inst = inst_([hbm(), dram()], [3], 1, reads=[(0, 0, 3)])
    ev = run(inst, [[0]])
    # in hbm: device_hbm = 3 / 4 = 0.75 s
    assert ev.feasible and ev.epoch_time_s.tolist() == [0.75] and ev.total_time_s == 0.75
    assert ev.binding == ["device:hbm"]
    assert ev.read_bytes.tolist() == [[3.0], [0.0]]
    ev = run(inst, [[1]])
    # in dram: device_dram = 3 / 1 = 3 s
    assert ev.total_time_s == 3.0 and ev.binding == ["device:dram"]
    assert ev.read_bytes.tolist() == [[0.0], [3.0]]


def test_device_term_sums_reads_writes_and_copies():
    # item 0 (2 B) in hbm at epoch 0, moves to dram at epoch 1 (copy during epoch 0);
    # epoch 0 reads 2 B and writes 1 B of it.  hbm 4 B/s, dram 4 B/s (no links).
    inst = inst_([hbm(bw=4.0), dram(bw=4.0)], [2], 2, reads=[(0, 0, 2)], writes=[(0, 0, 1)])
    ev = run(inst, [[0, 1]])
    # epoch 0: hbm R=2, W=1, Mout=2 -> (2+1+2)/4 = 1.25 ; dram Min=2 -> 2/4 = 0.5
    # epoch 1: nothing -> 0
    assert ev.feasible
    assert ev.epoch_time_s.tolist() == [1.25, 0.0] and ev.total_time_s == 1.25
    assert ev.binding[0] == "device:hbm"
    assert ev.copy_out_bytes.tolist() == [[2.0, 0.0], [0.0, 0.0]]
    assert ev.copy_in_bytes.tolist() == [[0.0, 0.0], [2.0, 0.0]]
    assert ev.write_bytes.tolist() == [[1.0, 0.0], [0.0, 0.0]]
    assert ev.num_moves == 1


def test_link_read_term():
    # item (2 B) read whole from dram: device 4 B/s, link_read 1 B/s
    inst = inst_([hbm(), dram(bw=4.0, lr=1.0)], [2], 1, reads=[(0, 0, 2)])
    ev = run(inst, [[1]])
    # device_dram = 2/4 = 0.5 ; link_read_dram = 2/1 = 2  -> 2
    assert ev.total_time_s == 2.0 and ev.binding == ["link_read:dram"]


def test_link_write_term_counts_writes_not_reads():
    # item (3 B) in dram, epoch 0 reads 2 B and writes 3 B; dram bw 4, link_write 1
    inst = inst_([hbm(), dram(bw=4.0, lw=1.0)], [3], 1, reads=[(0, 0, 2)], writes=[(0, 0, 3)])
    ev = run(inst, [[1]])
    # device = (2+3)/4 = 1.25 ; link_write = W/1 = 3 (reads do not cross the write link)
    assert ev.total_time_s == 3.0 and ev.binding == ["link_write:dram"]
    # the same with the link on reads only: link_read = 2/1 = 2 > device 1.25
    inst = inst_([hbm(), dram(bw=4.0, lr=1.0)], [3], 1, reads=[(0, 0, 2)], writes=[(0, 0, 3)])
    ev = run(inst, [[1]])
    assert ev.total_time_s == 2.0 and ev.binding == ["link_read:dram"]


def test_compute_floor():
    # 1 B read from hbm (4 B/s) in each of 2 epochs; compute floor (2.0, 0)
    inst = inst_([hbm(), dram()], [1], 2, reads=[(0, 0, 1), (1, 0, 1)], min_time_s=[2.0, 0.0])
    ev = run(inst, [[0, 0]])
    # tau = (max(2, 0.25), max(0, 0.25)) = (2, 0.25)
    assert ev.epoch_time_s.tolist() == [2.0, 0.25] and ev.total_time_s == 2.25
    assert ev.binding == ["compute", "device:hbm"]
    # an epoch with nothing to do and no floor takes 0 s
    inst = inst_([hbm(), dram()], [1], 2, reads=[(0, 0, 1)])
    assert run(inst, [[0, 0]]).epoch_time_s.tolist() == [0.25, 0.0]


def test_copy_runs_during_the_epoch_before_the_move():
    # item 0 (2 B): dram at epoch 0, hbm at epoch 1.  Reads 1 B at epoch 0, 2 B at epoch 1.
    # hbm cap 2, 4 B/s ; dram 2 B/s, link_read 1, link_write 1.
    inst = inst_([hbm(cap=2, bw=4.0), dram(bw=2.0, lr=1.0, lw=1.0)], [2], 2,
                 reads=[(0, 0, 1), (1, 0, 2)])
    ev = run(inst, [[1, 0]])
    # epoch 0: dram R=1, Mout=2: device (1+2)/2 = 1.5, link_read (1+2)/1 = 3
    #          hbm Min=2: device 2/4 = 0.5                              -> tau0 = 3
    # epoch 1: hbm R=2 -> 2/4 = 0.5                                      -> tau1 = 0.5
    assert ev.feasible
    assert ev.epoch_time_s.tolist() == [3.0, 0.5] and ev.total_time_s == 3.5
    assert ev.binding == ["link_read:dram", "device:hbm"]
    assert ev.copy_in_bytes.tolist() == [[2.0, 0.0], [0.0, 0.0]]
    assert ev.copy_out_bytes.tolist() == [[0.0, 0.0], [2.0, 0.0]]
    # occupancy: hbm holds the copy during epoch 0, the item at epoch 1
    assert ev.occupancy_bytes.tolist() == [[2.0, 2.0], [2.0, 0.0]]
    # initial residency at birth costs nothing: born in hbm, no copy traffic at all
    ev = run(inst, [[0, 0]])
    assert ev.copy_in_bytes.sum() == 0 and ev.epoch_time_s.tolist() == [0.25, 0.5]


def test_copy_occupies_the_destination_during_the_epoch_before():
    # hbm cap 2.  item 0 (2 B) dram -> hbm at epoch 1; item 1 (1 B) in hbm, alive only at
    # epoch 0.  Residents never exceed 2 B (1 at e0, 2 at e1), but during epoch 0 hbm
    # holds item 1 and the incoming copy of item 0: 1 + 2 = 3 > 2.
    inst = inst_([hbm(cap=2), dram()], [2, 1], 2, death=[2, 1])
    ev = run(inst, [[1, 0], [0, -1]])
    assert not ev.feasible
    assert ev.occupancy_bytes[0].tolist() == [3.0, 2.0]
    assert len(ev.violations) == 1
    assert re.search(r"\bepoch 0\b.*\bhbm\b", ev.violations[0]), ev.violations
    assert math.isfinite(ev.total_time_s)  # capacity violations still get a time
    # the copy one epoch later (move at epoch 1 -> copy during 0) is what overflows: if
    # item 1 is in dram instead, it fits
    assert run(inst, [[1, 0], [1, -1]]).feasible


def test_copy_occupies_a_bounded_dram_too():
    # dram cap 1.  item 0 (1 B) hbm -> dram at epoch 1 (copy into dram during epoch 0);
    # item 1 (1 B) in dram at epoch 0 only: dram holds 1 + 1 = 2 > 1 during epoch 0.
    inst = inst_([hbm(), dram(cap=1)], [1, 1], 2, death=[2, 1])
    ev = run(inst, [[0, 1], [1, -1]])
    assert not ev.feasible
    assert ev.occupancy_bytes[1].tolist() == [2.0, 1.0]
    assert re.search(r"\bepoch 0\b.*\bdram\b", " ".join(ev.violations))
    # the source keeps its copy during the move: hbm holds item 0 at epoch 0
    assert ev.occupancy_bytes[0].tolist() == [1.0, 0.0]


@pytest.mark.parametrize("lw_ssd, tau0, binding", [
    # epoch 0: mid Mout=2: device 2/2 = 1, link_read 2/1 = 2
    #          ssd Min=2: device 2/2 = 1, link_write 2/lw
    (4.0, 2.0, "link_read:mid"),       # 2/4 = 0.5 -> tau0 = 2
    (0.5, 4.0, "link_write:ssd"),      # 2/0.5 = 4 -> tau0 = 4
])
def test_three_tier_copy_between_far_tiers(lw_ssd, tau0, binding):
    tiers = [hbm(), dram(bw=2.0, lr=1.0, lw=1.0, name="mid"), dram(bw=2.0, lr=4.0, lw=lw_ssd, name="ssd")]
    inst = inst_(tiers, [2], 2)
    ev = run(inst, [[1, 2]])
    assert ev.feasible
    assert ev.epoch_time_s.tolist() == [tau0, 0.0] and ev.binding[0] == binding
    assert ev.copy_out_bytes[:, 0].tolist() == [0.0, 2.0, 0.0]
    assert ev.copy_in_bytes[:, 0].tolist() == [0.0, 0.0, 2.0]


def test_throughput_effective_bandwidth_and_hbm_share():
    inst = tiny_instance()
    ev = evaluate(inst, Schedule("tiny", [0, 1, 2], [0, 0, 1], [0, 1, 0]))
    # T = 2 s, 3 epochs without step labels -> 1.5 steps/s; 5 B read / 2 s = 2.5 B/s;
    # hbm serves items 0 and 2: reads (0,0),(1,2),(2,0),(2,2) = 4 of 5 B
    assert ev.throughput_steps_per_s == 1.5
    assert ev.effective_read_Bps == 2.5
    assert ev.hbm_read_share == pytest.approx(0.8)
    # with step labels (0, 0, 1) there are 2 steps
    labelled = make_instance(name="tiny", tiers=inst.tiers, size_bytes=inst.size_bytes,
                             num_epochs=3, birth=inst.birth, death=inst.death,
                             reads=(inst.read_epoch, inst.read_item, inst.read_bytes),
                             writes=(inst.write_epoch, inst.write_item, inst.write_bytes),
                             epoch_labels={"step": [0, 0, 1]})
    ev = evaluate(labelled, Schedule("tiny", [0, 1, 2], [0, 0, 1], [0, 1, 0]))
    assert ev.throughput_steps_per_s == 1.0


def test_model_md_worked_example_by_hand():
    # epoch 0: hbm reads item 0 (1 B) -> 0.25 ; dram reads item 1 (1 B): device 1/1 = 1,
    #          link_read 1/1 = 1                                    -> tau0 = 1
    # epoch 1: item 2 born in hbm, read 1 + written 1 -> (1+1)/4     -> tau1 = 0.5
    # epoch 2: hbm reads items 0 and 2 -> 2/4                         -> tau2 = 0.5
    ev = evaluate(tiny_instance(), Schedule("tiny", [0, 1, 2], [0, 0, 1], [0, 1, 0]))
    assert ev.feasible and ev.violations == []
    assert ev.epoch_time_s.tolist() == [1.0, 0.5, 0.5] and ev.total_time_s == 2.0
    assert ev.num_moves == 0
    # every item in dram: epoch 0 reads 2 B at 1 B/s = 2; epoch 1: R=1, W=1 over
    # device (1+1)/1 = 2, link_read 1, link_write 1 -> 2; epoch 2: 2 B -> 2.  T = 6
    ev = run(tiny_instance(), [[1, 1, 1]] * 3)
    assert ev.epoch_time_s.tolist() == [2.0, 2.0, 2.0]


# ------------------------------------------------------------------ inclusive mode

def incl(tiers, sizes, E, reads=(), writes=(), **kw):
    return inst_(tiers, sizes, E, reads, writes, mode="inclusive", **kw)


def test_inclusive_read_split_balances_the_two_copies():
    # item (5 B) with a tier-0 copy, read whole.  hbm 4 B/s, dram 1 B/s.
    # H from hbm: H/4 = (5-H)/1 -> H = 4, tau = 1
    inst = incl([hbm(cap=10), dram()], [5], 1, reads=[(0, 0, 5)])
    ev = run(inst, [[0]])
    assert ev.feasible and ev.total_time_s == pytest.approx(1.0, rel=1e-12)
    assert ev.read_bytes[:, 0] == pytest.approx([4.0, 1.0], rel=1e-12)
    # without the copy every byte comes from dram: 5/1 = 5
    ev = run(inst, [[1]])
    assert ev.total_time_s == 5.0 and ev.read_bytes[:, 0].tolist() == [0.0, 5.0]


def test_inclusive_read_split_with_a_dram_read_link():
    # as above with dram link_read 0.5: H/4 = (5-H)/0.5 -> H (1/4 + 2) = 10 -> H = 40/9,
    # tau = 10/9 (the device line, (5-H)/1 = 5/9, is below)
    inst = incl([hbm(cap=10), dram(lr=0.5)], [5], 1, reads=[(0, 0, 5)])
    ev = run(inst, [[0]])
    assert ev.total_time_s == pytest.approx(10 / 9, rel=1e-12)
    assert ev.read_bytes[0, 0] == pytest.approx(40 / 9, rel=1e-12)
    assert ev.binding[0] in ("device:hbm", "link_read:dram")


def test_inclusive_read_split_is_clipped_to_the_copied_items():
    # A (1 B, copy, read 1) and B (4 B, no copy, read 4). hbm 4, dram 1.
    # unclipped H = 4 > 1 B available from copies -> H = 1: tau = max(1/4, 4/1) = 4
    inst = incl([hbm(cap=10), dram()], [1, 4], 1, reads=[(0, 0, 1), (0, 1, 4)])
    ev = run(inst, [[0], [1]])
    assert ev.total_time_s == 4.0 and ev.read_bytes[:, 0].tolist() == [1.0, 4.0]


def test_inclusive_writes_go_to_tier_1_always():
    # item (4 B) with a copy: read 4, write 2.  hbm 4 B/s, dram 2 B/s.
    # writes land in both tiers: (H+2)/4 = (4-H+2)/2 -> H = 10/3, tau = 4/3.
    # (writes only in hbm would give H = 2, tau = 1; only in dram H = 4, tau = 1)
    inst = incl([hbm(cap=10), dram(bw=2.0)], [4], 1, reads=[(0, 0, 4)], writes=[(0, 0, 2)])
    ev = run(inst, [[0]])
    assert ev.total_time_s == pytest.approx(4 / 3, rel=1e-12)
    assert ev.write_bytes[:, 0].tolist() == [2.0, 2.0]
    # without a copy: writes only in dram, reads all from dram: (4 + 2)/2 = 3
    ev = run(inst, [[1]])
    assert ev.total_time_s == 3.0 and ev.write_bytes[:, 0].tolist() == [0.0, 2.0]
    # the write link of dram carries the writes of copied items too
    inst = incl([hbm(cap=10), dram(bw=4.0, lw=0.5)], [4], 1, writes=[(0, 0, 2)])
    ev = run(inst, [[0]])
    # hbm 2/4 = 0.5 ; dram device 2/4 = 0.5 ; link_write 2/0.5 = 4
    assert ev.total_time_s == 4.0 and ev.binding == ["link_write:dram"]


def test_inclusive_promotion_is_a_copy_and_demotion_is_free():
    # hbm cap 1, 4 B/s ; dram 1 B/s, link_read 1, link_write 1.  A, B 1 B each, 3 epochs.
    # A has a tier-0 copy at epoch 0 only (demoted at 1: free, frees hbm from epoch 1);
    # B gets one at epoch 2 (promotion: copied dram -> hbm during epoch 1).
    tiers = [hbm(cap=1, bw=4.0), dram(bw=1.0, lr=1.0, lw=1.0)]
    inst = incl(tiers, [1, 1], 3)
    ev = run(inst, [[0, 1, 1], [1, 1, 0]])
    # epoch 0: nothing.  epoch 1: dram Mout=1: device 1, link_read 1; hbm Min=1: 0.25.
    assert ev.feasible, ev.violations
    assert ev.epoch_time_s.tolist() == [0.0, 1.0, 0.0] and ev.total_time_s == 1.0
    assert ev.copy_in_bytes.tolist() == [[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    assert ev.copy_out_bytes.tolist() == [[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    assert ev.occupancy_bytes.tolist() == [[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]]
    # the same residency in exclusive mode: both changes are copies.
    # epoch 0: A hbm -> dram: hbm Mout 1 -> 0.25, dram Min 1: device 1, link_write 1 -> 1
    # epoch 1: B dram -> hbm: dram Mout 1: device 1, link_read 1 -> 1
    ex = inst_(tiers, [1, 1], 3)
    ev = run(ex, [[0, 1, 1], [1, 1, 0]])
    assert ev.feasible and ev.epoch_time_s.tolist() == [1.0, 1.0, 0.0]
    assert ev.occupancy_bytes.tolist() == [[1.0, 1.0, 1.0], [2.0, 2.0, 1.0]]
    # inclusive: the demoted copy still holds hbm during the epoch before the demotion,
    # so promoting B one epoch earlier (copy during epoch 0) overfills hbm at epoch 0
    ev = run(inst, [[0, 1, 1], [1, 0, 0]])
    assert not ev.feasible
    assert ev.occupancy_bytes[0].tolist() == [2.0, 1.0, 1.0]
    assert re.search(r"\bepoch 0\b.*\bhbm\b", " ".join(ev.violations))


def test_inclusive_dram_holds_every_alive_item():
    # dram cap 2, three 1-B items alive together: dram must hold all 3 whatever hbm holds
    inst = incl([hbm(cap=3), dram(cap=2)], [1, 1, 1], 1)
    ev = run(inst, [[0], [0], [0]])
    assert not ev.feasible and ev.occupancy_bytes[1].tolist() == [3.0]
    assert re.search(r"\bepoch 0\b.*\bdram\b", " ".join(ev.violations))


# ======================================================= independent reference evaluator

def _lines_max(lines, H):
    return max(a * H + b for a, b in lines)


def reference_evaluate(inst, rho):
    """docs/model.md sections 2-4 by loops.  Returns (feasible, tau, occupancy, copy_in,
    copy_out, writes, reads_exclusive)."""
    K, E = inst.num_tiers, inst.num_epochs
    s = inst.size_bytes.tolist()
    incl_ = inst.mode == "inclusive"
    occ = np.zeros((K, E))
    cin = np.zeros((K, E))
    cout = np.zeros((K, E))
    for i in range(inst.num_items):
        b, d = int(inst.birth[i]), int(inst.death[i])
        for e in range(b, d):
            k = int(rho[i, e])
            if incl_:
                occ[1, e] += s[i]
                if k == 0:
                    occ[0, e] += s[i]
            else:
                occ[k, e] += s[i]
            if e > b and k != rho[i, e - 1]:
                src = int(rho[i, e - 1])
                if incl_ and k == 1:
                    continue  # demotion: drop the copy, no traffic
                cout[src, e - 1] += s[i]
                cin[k, e - 1] += s[i]
                occ[k, e - 1] += s[i]
    feasible = all(t.capacity_bytes is None or occ[k, e] <= t.capacity_bytes
                   for k, t in enumerate(inst.tiers) for e in range(E))
    R = np.zeros((K, E))
    W = np.zeros((K, E))
    for e, i, r in zip(inst.read_epoch.tolist(), inst.read_item.tolist(), inst.read_bytes.tolist()):
        R[rho[i, e], e] += r          # inclusive: R[0] = reads that may use the copy
    for e, i, w in zip(inst.write_epoch.tolist(), inst.write_item.tolist(), inst.write_bytes.tolist()):
        if incl_:
            W[1, e] += w
            if rho[i, e] == 0:
                W[0, e] += w
        else:
            W[rho[i, e], e] += w
    tau = np.zeros(E)
    for e in range(E):
        if not incl_:
            terms = [float(inst.min_time_s[e])]
            for k, t in enumerate(inst.tiers):
                terms.append((R[k, e] + W[k, e] + cout[k, e] + cin[k, e]) / t.bandwidth_Bps)
                if t.link_read_Bps:
                    terms.append((R[k, e] + cout[k, e]) / t.link_read_Bps)
                if t.link_write_Bps:
                    terms.append((W[k, e] + cin[k, e]) / t.link_write_Bps)
            tau[e] = max(terms)
            continue
        # inclusive: tau(H) is the max of lines in H (bytes read from tier-0 copies),
        # H in [0, R[0, e]]; its minimum is at an end or where two lines cross
        t0, t1 = inst.tiers
        tot = R[0, e] + R[1, e]
        lines = [(0.0, float(inst.min_time_s[e])),
                 (1 / t0.bandwidth_Bps, (W[0, e] + cin[0, e] + cout[0, e]) / t0.bandwidth_Bps),
                 (-1 / t1.bandwidth_Bps, (tot + W[1, e] + cin[1, e] + cout[1, e]) / t1.bandwidth_Bps)]
        if t1.link_read_Bps:
            lines.append((-1 / t1.link_read_Bps, (tot + cout[1, e]) / t1.link_read_Bps))
        if t1.link_write_Bps:
            lines.append((0.0, (W[1, e] + cin[1, e]) / t1.link_write_Bps))
        cands = [0.0, R[0, e]]
        for (a1, b1), (a2, b2) in itertools.combinations(lines, 2):
            if a1 != a2:
                h = (b2 - b1) / (a1 - a2)
                if 0.0 <= h <= R[0, e]:
                    cands.append(h)
        tau[e] = min(_lines_max(lines, h) for h in cands)
    return feasible, tau, occ, cin, cout, W, R


@settings(max_examples=250, deadline=None, database=None)
@given(instances_with_residency())
def test_evaluator_matches_reference(case):
    inst, rho, sched = case
    ev = evaluate(inst, sched)
    feasible, tau, occ, cin, cout, W, R = reference_evaluate(inst, rho)
    assert ev.feasible == feasible, ev.violations
    np.testing.assert_allclose(ev.epoch_time_s, tau, rtol=1e-12, atol=1e-12)
    assert ev.total_time_s == pytest.approx(tau.sum(), rel=1e-12, abs=1e-12)
    np.testing.assert_array_equal(ev.occupancy_bytes, occ)
    np.testing.assert_array_equal(ev.copy_in_bytes, cin)
    np.testing.assert_array_equal(ev.copy_out_bytes, cout)
    np.testing.assert_array_equal(ev.write_bytes, W)
    if inst.mode == "exclusive":
        np.testing.assert_array_equal(ev.read_bytes, R)
    else:  # the split moves reads between tiers, never creates or loses any
        np.testing.assert_allclose(ev.read_bytes.sum(axis=0), R.sum(axis=0), rtol=1e-12)
        assert np.all(ev.read_bytes[0] <= R[0] + 1e-9) and np.all(ev.read_bytes >= -1e-9)
    alive = rho >= 0
    moves = int(((rho[:, 1:] != rho[:, :-1]) & alive[:, 1:] & alive[:, :-1]).sum())
    assert ev.num_moves == moves
    # the schedule is the change list of the residency, and converts back
    np.testing.assert_array_equal(residency_matrix(inst, sched), rho)
    assert check_structure(inst, sched) == []


@HYP
@given(instances_with_residency())
def test_time_is_monotone_in_the_compute_floor(case):
    """Raising every floor to tau(e) changes nothing; raising it above sets tau = floor."""
    inst, rho, sched = case
    ev = evaluate(inst, sched)
    floors = ev.epoch_time_s + 1.0
    raised = make_instance(name=inst.name, tiers=inst.tiers, size_bytes=inst.size_bytes,
                           num_epochs=inst.num_epochs, birth=inst.birth, death=inst.death,
                           pinned_tier=inst.pinned_tier, initial_tier=inst.initial_tier,
                           min_time_s=floors, mode=inst.mode,
                           reads=(inst.read_epoch, inst.read_item, inst.read_bytes),
                           writes=(inst.write_epoch, inst.write_item, inst.write_bytes))
    ev2 = evaluate(raised, sched)
    np.testing.assert_array_equal(ev2.epoch_time_s, floors)
    assert set(ev2.binding) == {"compute"}


# ============================================================== mutation tests

def entries(sched):
    return list(zip(sched.item.tolist(), sched.epoch.tolist(), sched.tier.tolist()))


def make(inst, rows):
    if not rows:
        return Schedule(inst.name, [], [], [])
    it, ep, ti = zip(*rows)
    return Schedule(inst.name, list(it), list(ep), list(ti))


def refused(inst, rows, pattern):
    """The mutated schedule is infeasible, and some violation matches ``pattern``."""
    ev = evaluate(inst, make(inst, rows))
    assert ev.feasible is False
    assert any(re.search(pattern, v) for v in ev.violations), (pattern, ev.violations)
    return ev


@st.composite
def valid_case(draw, **kw):
    """(instance with unbounded tiers, feasible schedule, its residency)."""
    d = HypothesisDraw(draw)
    inst = build_instance(d, bounded=False, **kw)
    rho = build_residency(d, inst)
    sched = schedule_from_residency(inst, np.where(rho < 0, 0, rho))
    ev = evaluate(inst, sched)
    assert ev.feasible and ev.violations == []
    return inst, sched, rho


@HYP
@given(valid_case(), st.data())
def test_mutation_tier_out_of_range(case, data):
    inst, sched, _ = case
    rows = entries(sched)
    j = data.draw(st.integers(0, len(rows) - 1))
    bad = data.draw(st.sampled_from([-1, inst.num_tiers, inst.num_tiers + 5]))
    rows[j] = (rows[j][0], rows[j][1], bad)
    ev = refused(inst, rows, rf"\btier {bad} does not exist")
    assert math.isnan(ev.total_time_s)


@HYP
@given(valid_case(), st.data())
def test_mutation_drop_birth_entry(case, data):
    inst, sched, _ = case
    rows = entries(sched)
    i = data.draw(st.integers(0, inst.num_items - 1))
    first = next(j for j, r in enumerate(rows) if r[0] == i)
    del rows[first]
    b = int(inst.birth[i])
    refused(inst, rows, rf"^item {i}\b.*\bbirth epoch {b}\b")


@HYP
@given(valid_case(), st.data())
def test_mutation_duplicate_entry(case, data):
    inst, sched, _ = case
    rows = entries(sched)
    j = data.draw(st.integers(0, len(rows) - 1))
    rows.insert(j + 1, rows[j])
    it, ep, _ = rows[j]
    refused(inst, rows, rf"repeated \(item {it}, epoch {ep}\)")


@HYP
@given(valid_case(), st.data())
def test_mutation_unsorted_entries(case, data):
    inst, sched, _ = case
    rows = entries(sched)
    assume(len(rows) >= 2)
    j = data.draw(st.integers(0, len(rows) - 2))
    rows[j], rows[j + 1] = rows[j + 1], rows[j]
    it, ep, _ = rows[j + 1]   # the first entry out of order
    refused(inst, rows, rf"not sorted.*\(item {it}, epoch {ep}\)")


@HYP
@given(valid_case(min_pinned=1), st.data())
def test_mutation_move_a_pinned_item(case, data):
    inst, sched, _ = case
    rows = entries(sched)
    i = 0                                   # min_pinned=1 pins item 0
    p = int(inst.pinned_tier[i])
    assert p >= 0
    other = data.draw(st.sampled_from([k for k in range(inst.num_tiers) if k != p]))
    b, d = int(inst.birth[i]), int(inst.death[i])
    if d - b >= 2 and data.draw(st.booleans()):
        e = data.draw(st.integers(b + 1, d - 1))     # a move away from the pin
        rows.insert(rows.index((i, b, p)) + 1, (i, e, other))
    else:
        e = b                                         # placed elsewhere from birth
        rows[rows.index((i, b, p))] = (i, b, other)
    refused(inst, rows, rf"^item {i}: pinned to tier {p} but placed in tier {other} at epoch {e}\b")


@HYP
@given(valid_case(min_initial=1), st.data())
def test_mutation_violate_initial_tier(case, data):
    inst, sched, _ = case
    rows = entries(sched)
    i = next(i for i in range(inst.num_items) if inst.initial_tier[i] >= 0)
    init = int(inst.initial_tier[i])
    j = next(j for j, r in enumerate(rows) if r[0] == i)
    assert rows[j][2] == init
    other = data.draw(st.sampled_from([k for k in range(inst.num_tiers) if k != init]))
    rows[j] = (i, rows[j][1], other)
    refused(inst, rows, rf"^item {i}: initial tier must be {init}, schedule puts it in {other}\b")


@HYP
@given(valid_case(), st.data())
def test_mutation_entry_that_changes_nothing(case, data):
    inst, sched, rho = case
    rows = entries(sched)
    spots = [(i, e) for i in range(inst.num_items)
             for e in range(int(inst.birth[i]) + 1, int(inst.death[i]))
             if not any(r[0] == i and r[1] == e for r in rows)]
    assume(spots)
    i, e = data.draw(st.sampled_from(spots))
    rows.append((i, e, int(rho[i, e])))
    rows.sort()
    refused(inst, rows, rf"^item {i}: entry at epoch {e} does not change its tier")


@HYP
@given(valid_case(), st.data())
def test_mutation_entry_after_death(case, data):
    inst, sched, rho = case
    rows = entries(sched)
    i = data.draw(st.integers(0, inst.num_items - 1))
    d = int(inst.death[i])
    last = max(j for j, r in enumerate(rows) if r[0] == i)
    new_tier = (rows[last][2] + 1) % inst.num_tiers
    rows.insert(last + 1, (i, d, new_tier))
    refused(inst, rows, rf"^item {i}: entry at epoch {d} after its death")


@HYP
@given(valid_case(), st.data())
def test_mutation_unknown_item_or_instance(case, data):
    inst, sched, _ = case
    rows = entries(sched) + [(inst.num_items, 0, 0)]
    refused(inst, rows, rf"\bitem {inst.num_items} outside 0\.\.{inst.num_items - 1}")
    other = Schedule("someone-else", sched.item, sched.epoch, sched.tier)
    ev = evaluate(inst, other)
    assert ev.feasible is False and any("someone-else" in v for v in ev.violations)


@HYP
@given(valid_case(), st.data())
def test_mutation_overfill_hbm(case, data):
    """Shrink hbm below what the schedule keeps there (copies included) at its busiest
    epoch: refused, naming an epoch where hbm is over capacity and the tier."""
    inst, sched, rho = case
    _, _, occ, *_ = reference_evaluate(inst, rho)
    peak = int(occ[0].max())
    assume(peak >= 1)
    cap = data.draw(st.integers(0, peak - 1))
    tiers = [dict(name=t.name, capacity_bytes=t.capacity_bytes, bandwidth_Bps=t.bandwidth_Bps,
                  **({} if k == 0 else dict(link_read_Bps=t.link_read_Bps,
                                            link_write_Bps=t.link_write_Bps)))
             for k, t in enumerate(inst.tiers)]
    tiers[0]["capacity_bytes"] = cap
    small = make_instance(name=inst.name, tiers=tiers, size_bytes=inst.size_bytes,
                          num_epochs=inst.num_epochs, birth=inst.birth, death=inst.death,
                          pinned_tier=inst.pinned_tier, initial_tier=inst.initial_tier,
                          min_time_s=inst.min_time_s, mode=inst.mode,
                          reads=(inst.read_epoch, inst.read_item, inst.read_bytes),
                          writes=(inst.write_epoch, inst.write_item, inst.write_bytes))
    ev = evaluate(small, sched)
    assert ev.feasible is False
    over = {e for e in range(inst.num_epochs) if occ[0, e] > cap}
    named = set()
    for v in ev.violations:
        m = re.match(r"epoch (\d+): tier hbm holds", v)
        assert m, v
        named.add(int(m.group(1)))
    assert named == over
    # the time is still computed, and is the same as with room to spare
    assert ev.total_time_s == evaluate(inst, sched).total_time_s
