//! Golden bucketing vectors, published in docs/bucketing.md (computed with Python's hashlib).

pub const GOLDEN: &[(&str, &str, u64)] = &[
    ("canary:payments", "user-1", 17920278214730237633),
    ("canary:payments", "user-2", 9548856612929565109),
    ("canary:payments", "", 4302042515277909775),
    ("ab:checkout:button-color", "user-42", 15692720249274105296),
    ("flag:new-ui:default", "alice", 17748139708052725583),
    ("flag:new-ui:rule-1", "bob", 14052071314754760599),
    ("canary:svc", "ünïcode-ключ", 14531740628847867864),
];
