//! Spec → [`Tenant`]: a validated tenant carrying its sizing. Pure: no I/O.
