//! A typed OVSDB client (RFC 7047 plus the Open vSwitch extensions) for the OVN Northbound and
//! Southbound databases and the local `Open_vSwitch` database, with an in-memory replica kept
//! current by monitors.
