"""`stratbox.export` against stand-in bindings: the agent survives across per-export
`WitWorld` objects, and every exception becomes the WIT error string."""

import unittest

import _paths  # noqa: F401
import fake_bindings
from clamm_maker import ClammMaker
from stratbox import BaseStrategyAgent, StrategyError, export, host
from stratbox.v3 import get_sqrt_ratio_at_tick

POOL = "0x8ad599c3a0ff1de082011efddc58f1908eb6e6d8"
CONFIG = (
    f'{{"pool":"{POOL}","half_width_ticks":600,"margin_ticks":120,'
    '"liquidity":"1000000000000000000","max_slippage_bps":50}'
)


class Counter(BaseStrategyAgent):
    def __init__(self, config):
        self.seen = 0
        self.mode = config.get("mode")

    def generate_proposals(self, event, snapshot):
        self.seen += 1
        if self.mode == "bug":
            return [][1]
        if self.mode == "refuse":
            raise StrategyError("not today")
        if self.mode == "junk":
            return ["not a proposal"]
        return []

    def save(self):
        if self.mode == "bad-save":
            raise RuntimeError("disk on fire")
        return str(self.seen).encode()

    def restore(self, state):
        self.seen = int(state.decode())


class Export(unittest.TestCase):
    def setUp(self):
        self.wit = fake_bindings.install()
        self.Err = fake_bindings.Err

    def tearDown(self):
        fake_bindings.uninstall()

    def snapshot(self, tick):
        w = self.wit
        pool = w.PoolState(POOL, "0x10", "0x20", 3000, 60, str(get_sqrt_ratio_at_tick(tick)), tick, "1")
        return w.Snapshot(10, 0, [pool], [w.TokenBalance("0x10", "5")])

    def swap(self, tick):
        w = self.wit
        return w.Event_Swap(
            w.SwapEvent(w.EventOrigin(10, 0, ""), POOL, True, "1", "1", str(get_sqrt_ratio_at_tick(tick)), "1", tick)
        )

    def block(self):
        return self.wit.Event_NewBlock(self.wit.BlockInfo(11, 0, "0x"))

    def err(self, fn, *args):
        with self.assertRaises(self.Err) as cm:
            fn(*args)
        self.assertIs(type(cm.exception), self.Err)
        return cm.exception.value

    def test_state_lives_across_separate_world_objects(self):
        # componentize-py makes one WitWorld() per export: mimic that.
        World = export(Counter)
        init, on_event, save, restore = World(), World(), World(), World()
        init.init("{}")
        for _ in range(3):
            self.assertEqual(on_event.on_event(self.block(), self.snapshot(0)), [])
        self.assertEqual(save.save(), b"3")
        restore.restore(b"41")
        on_event.on_event(self.block(), self.snapshot(0))
        self.assertEqual(save.save(), b"42")
        # A new init starts afresh.
        init.init("{}")
        self.assertEqual(save.save(), b"0")

    def test_calls_before_init_fail_cleanly(self):
        World = export(Counter)
        self.assertEqual(self.err(World().on_event, self.block(), self.snapshot(0)), "on-event called before a successful init")
        self.assertEqual(self.err(World().restore, b""), "restore called before a successful init")
        self.assertEqual(World().save(), b"")

    def test_failed_init_leaves_no_instance(self):
        World = export(ClammMaker)
        World().init(CONFIG)
        message = self.err(World().init, '{"pool": 1}')
        self.assertEqual(message, "bad clamm-maker config: invalid type: integer `1`, expected a string")
        self.assertEqual(self.err(World().on_event, self.block(), self.snapshot(0)), "on-event called before a successful init")
        self.assertTrue(self.err(World().init, "{").startswith("bad clamm-maker config: "))

    def test_exceptions_become_err_strings(self):
        World = export(Counter)
        World().init('{"mode": "refuse"}')
        self.assertEqual(self.err(World().on_event, self.block(), self.snapshot(0)), "not today")
        World().init('{"mode": "bug"}')
        message = self.err(World().on_event, self.block(), self.snapshot(0))
        self.assertTrue(message.startswith("IndexError: list index out of range (at test_export.py:"), message)
        self.assertIn("in generate_proposals", message)
        World().init('{"mode": "junk"}')
        message = self.err(World().on_event, self.block(), self.snapshot(0))
        self.assertEqual(message, "proposal 0 is a str, not a stratbox Proposal; build it with stratbox.proposal")
        message = self.err(World().init, "[]")
        self.assertTrue(message.startswith("AttributeError: 'list' object has no attribute 'get'"), message)

    def test_save_never_raises(self):
        World = export(Counter)
        World().init('{"mode": "bad-save"}')
        host.testing.take_logs()
        self.assertEqual(World().save(), b"")
        (level, line), = host.testing.take_logs()
        self.assertEqual(level, host.Level.ERROR)
        self.assertTrue(line.startswith("save failed, handing over no state: RuntimeError: disk on fire"), line)

    def test_default_restore_refuses_foreign_state(self):
        World = export(ClammMaker)
        World().init(CONFIG)
        World().restore(b"")
        self.assertEqual(
            self.err(World().restore, b"abc"),
            "ClammMaker does not restore saved state (3 bytes ignored); it starts from its initial state",
        )

    def test_clamm_maker_proposals_cross_as_wit_records(self):
        World = export(ClammMaker)
        world = World()
        world.init(CONFIG)
        (add,) = world.on_event(self.swap(10), self.snapshot(10))
        w = self.wit
        self.assertEqual(add.action, w.Action_AddLiquidity(w.RangeLiquidity(POOL, -600, 600, "1000000000000000000")))
        self.assertEqual(add.max_slippage_bps, 50)
        self.assertEqual(add.reason, "centre liquidity on tick 10")
        remove, add = world.on_event(self.swap(800), self.snapshot(800))
        self.assertIsInstance(remove.action, w.Action_RemoveLiquidity)
        self.assertEqual(remove.reason, "tick 800 left [-600, 600) by more than 120")
        self.assertEqual((add.action.value.tick_lower, add.action.value.tick_upper), (180, 1380))

    def test_every_event_case_converts(self):
        w = self.wit
        seen = []

        class Recorder(BaseStrategyAgent):
            def generate_proposals(self, event, snapshot):
                seen.append((event.kind, event.block, event.pool, snapshot.balance("0x10")))
                return []

        World = export(Recorder)
        World().init("null")
        origin = w.EventOrigin(7, 1, "0xab")
        liq = w.LiquidityEvent(origin, POOL, "0x1", -60, 60, "1", "2", "3")
        events = [
            self.block(),
            self.swap(0),
            w.Event_Mint(liq),
            w.Event_Burn(liq),
            w.Event_OraclePrice(w.OraclePrice(origin, "feed", "0x1", "0x2", "5")),
        ]
        for e in events:
            World().on_event(e, self.snapshot(0))
        self.assertEqual(
            seen,
            [
                ("new-block", 11, None, 5),
                ("swap", 10, POOL, 5),
                ("mint", 7, POOL, 5),
                ("burn", 7, POOL, 5),
                ("oracle-price", 7, None, 5),
            ],
        )

    def test_wire_fills_every_field_by_name(self):
        # wire.py builds the records positionally; each field gets a distinct value here
        # so a field order that drifted from types.py would show as a mismatch.
        from stratbox import types as t
        from stratbox.wire import event_from_wit, snapshot_from_wit

        w = self.wit
        origin = w.EventOrigin(7, 1, "0xab")
        liq = w.LiquidityEvent(origin, "0xp", "0xo", -60, 120, "11", "12", "13")
        want_origin = t.EventOrigin(block=7, log_index=1, tx_hash="0xab")
        want_liq = dict(origin=want_origin, pool="0xp", owner="0xo", tick_lower=-60, tick_upper=120,
                        liquidity="11", amount0="12", amount1="13")
        cases = [
            (w.Event_NewBlock(w.BlockInfo(9, 100, "0xh")), t.NewBlock(number=9, timestamp=100, hash="0xh")),
            (
                w.Event_Swap(w.SwapEvent(origin, "0xp", True, "21", "22", "23", "24", -5)),
                t.SwapEvent(origin=want_origin, pool="0xp", zero_for_one=True, amount_in="21", amount_out="22",
                            sqrt_price_x96="23", liquidity="24", tick=-5),
            ),
            (w.Event_Mint(liq), t.Mint(**want_liq)),
            (w.Event_Burn(liq), t.Burn(**want_liq)),
            (
                w.Event_OraclePrice(w.OraclePrice(origin, "feed", "0xb", "0xq", "31")),
                t.OraclePrice(origin=want_origin, source="feed", base="0xb", quote="0xq", price_e18="31"),
            ),
        ]
        for wire_event, want in cases:
            got = event_from_wit(wire_event)
            self.assertIs(type(got), type(want))
            self.assertEqual(got._asdict(), want._asdict())
            self.assertIsInstance(got, t.Event)
        snap = w.Snapshot(
            40, 41, [w.PoolState("0xp", "0x0", "0x1", 3000, 60, "51", -7, "52")], [w.TokenBalance("0xt", "61")]
        )
        self.assertEqual(
            snapshot_from_wit(snap),
            t.Snapshot(
                last_sync_block=40,
                timestamp=41,
                pools=(t.PoolState(pool="0xp", token0="0x0", token1="0x1", fee=3000, tick_spacing=60,
                                   sqrt_price_x96="51", tick=-7, liquidity="52"),),
                balances=(t.TokenBalance(token="0xt", amount="61"),),
            ),
        )

    def test_export_needs_an_agent_class(self):
        with self.assertRaises(TypeError):
            export(object)


if __name__ == "__main__":
    unittest.main()
