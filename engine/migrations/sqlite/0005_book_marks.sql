-- Each book's marks (engine::books::BookMarks): its peak equity, the UTC day it is in and
-- that day's starting equity, in the book's quote unit as base-10 TEXT of a U256. Without
-- them a restart would judge drawdown from a fresh peak and hand every book a fresh
-- daily-loss allowance. Written with the permission trackers (at once with a level change,
-- otherwise within about a second). `book` is the ledger account strategy:<s>:<account>.
-- The PostgreSQL file is identical.
CREATE TABLE book_marks (
    book              TEXT   PRIMARY KEY,
    strategy          TEXT   NOT NULL,
    peak_equity       TEXT   NOT NULL,
    day               BIGINT NOT NULL,
    day_start_equity  TEXT   NOT NULL,
    updated_at_ms     BIGINT NOT NULL
);
