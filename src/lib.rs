//! discador: a campaign dialer for FreeSWITCH.
