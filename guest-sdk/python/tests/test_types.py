import unittest

import _paths  # noqa: F401
from stratbox import host
from stratbox.amount import AmountParseError
from stratbox.types import (
    Burn,
    EventOrigin,
    Mint,
    NewBlock,
    OraclePrice,
    PoolState,
    Snapshot,
    SwapEvent,
    TokenBalance,
    same_address,
)

POOL = "0x8ad599c3a0ff1de082011efddc58f1908eb6e6d8"
ORIGIN = EventOrigin(block=7, log_index=1, tx_hash="")


def pool_state(address=POOL, liquidity="5"):
    return PoolState(address, "0x10", "0x20", 3000, 60, "79228162514264337593543950336", 0, liquidity)


class Types(unittest.TestCase):
    def test_same_address_is_ascii_case_insensitive(self):
        self.assertTrue(same_address(POOL, POOL.upper().replace("0X", "0x")))
        self.assertFalse(same_address(POOL, POOL[:-1] + "9"))
        # Only ASCII folds, as in Rust: the Kelvin sign is not a "k".
        self.assertFalse(same_address("\u212a", "k"))

    def test_snapshot_lookups(self):
        snap = Snapshot(1, 2, (pool_state(POOL.upper().replace("0X", "0x")),), (TokenBalance("0xAB", "42"),))
        self.assertEqual(snap.pool(POOL).fee, 3000)
        self.assertIsNone(snap.pool("0x01"))
        self.assertEqual(snap.balance("0xab"), 42)
        self.assertEqual(snap.balance("0xcd"), 0)

    def test_pool_accessors_parse_strictly(self):
        self.assertEqual(pool_state().sqrt_price(), 1 << 96)
        self.assertEqual(pool_state(liquidity=str((1 << 128) - 1)).liquidity_u128(), (1 << 128) - 1)
        with self.assertRaises(AmountParseError) as cm:
            pool_state(liquidity=str(1 << 128)).liquidity_u128()
        self.assertEqual(str(cm.exception), "amount does not fit in 128 bits")

    def test_events_share_kind_origin_block_pool(self):
        swap = SwapEvent(ORIGIN, POOL, True, "1", "1", "1", "1", 0)
        mint = Mint(ORIGIN, POOL, "0x1", -60, 60, "1", "1", "1")
        burn = Burn(ORIGIN, POOL, "0x1", -60, 60, "1", "1", "1")
        block = NewBlock(9, 100, "0x")
        oracle = OraclePrice(ORIGIN, "chainlink", "0x1", "0x2", "1")
        self.assertEqual([e.kind for e in (block, swap, mint, burn, oracle)],
                         ["new-block", "swap", "mint", "burn", "oracle-price"])
        self.assertEqual([e.block for e in (block, swap, mint, burn, oracle)], [9, 7, 7, 7, 7])
        self.assertEqual([e.pool for e in (block, swap, mint, burn, oracle)], [None, POOL, POOL, POOL, None])
        self.assertIsNone(block.origin)
        self.assertNotEqual(mint, burn)
        with self.assertRaises(Exception):
            swap.tick = 5  # frozen

    def test_host_double(self):
        host.testing.take_logs()
        host.info("hello")
        host.warn("careful")
        self.assertEqual(host.testing.take_logs(), [(host.Level.INFO, "hello"), (host.Level.WARN, "careful")])
        events = [SwapEvent(EventOrigin(b, 0, ""), POOL, True, "1", "1", "1", "1", 0) for b in (1, 2, 3, 4)]
        host.testing.set_history(events + [NewBlock(5, 0, "")])
        self.assertEqual(host.history(POOL.upper().replace("0X", "0x"), 2, 2), events[1:3])
        self.assertEqual(host.history("0x01", 0, 10), [])
        host.testing.set_history([])


if __name__ == "__main__":
    unittest.main()
