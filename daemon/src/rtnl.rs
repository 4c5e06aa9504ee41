//! A blocking rtnetlink socket that sends several requests in one datagram and reads their
//! answers, for the ADD and DEL paths.
//!
//! Why not the async `rtnetlink::Handle` there: a request to `NETLINK_ROUTE` is executed by the
//! kernel inside the `sendmsg` call, so on a tokio worker a veth creation (or a deletion, which
//! waits for an RCU grace period) blocks that worker for its whole duration, and one shared
//! handle is one socket driven by one task, which lines up every ADD's requests behind each
//! other. Here each ADD gets its own sockets on its own thread; only the kernel's RTNL lock is
//! shared. Batching saves the round trips: the kernel runs the messages of one datagram in order
//! and acknowledges each.

use std::io;

use rtnetlink::packet_core::{
    ErrorMessage, NLM_F_ACK, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// Largest answer we read: acknowledgements and single link messages, never dumps.
const RECV_BUFFER: usize = 64 * 1024;

/// The kernel's answer to one request of a batch.
#[derive(Debug)]
pub struct Answer {
    /// Messages the kernel sent for this request before acknowledging it (the link itself when
    /// the request carried `NLM_F_ECHO`).
    pub messages: Vec<RouteNetlinkMessage>,
    /// `Ok` when acknowledged, else the kernel's error.
    pub result: Result<(), ErrorMessage>,
}

/// A `NETLINK_ROUTE` socket in the network namespace of the thread that opened it (a socket
/// keeps its namespace when the thread moves on).
#[derive(Debug)]
pub struct Rtnl {
    socket: Socket,
    next_seq: u32,
    buf: Vec<u8>,
}

impl Rtnl {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        // Errors come back without the whole request copied in.
        socket.set_cap_ack(true)?;
        Ok(Self {
            socket,
            next_seq: 1,
            buf: Vec::with_capacity(RECV_BUFFER),
        })
    }

    /// Sends one request (`NLM_F_REQUEST | NLM_F_ACK | flags`) and returns its answer.
    pub fn request(&mut self, message: RouteNetlinkMessage, flags: u16) -> io::Result<Answer> {
        let mut answers = self.batch(vec![(message, flags)])?;
        answers
            .pop()
            .ok_or_else(|| io::Error::other("netlink: no answer to a request"))
    }

    /// Sends `requests` in one datagram, each with `NLM_F_REQUEST | NLM_F_ACK` and its own
    /// flags, and returns one answer per request, in order. The kernel runs them in order and
    /// does not stop at a failed one.
    pub fn batch(&mut self, requests: Vec<(RouteNetlinkMessage, u16)>) -> io::Result<Vec<Answer>> {
        let first = self.next_seq;
        let n = requests.len();
        let mut datagram = Vec::new();
        for (seq, (message, flags)) in (first..).zip(requests) {
            let mut header = NetlinkHeader::default();
            header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
            header.sequence_number = seq;
            let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
            msg.finalize();
            let start = datagram.len();
            datagram.resize(start + msg.buffer_len(), 0);
            msg.serialize(&mut datagram[start..]);
        }
        let count = u32::try_from(n).map_err(|_| io::Error::other("netlink: batch too large"))?;
        self.next_seq = first.wrapping_add(count);
        self.socket.send(&datagram, 0)?;

        let mut answers: Vec<Option<Answer>> = (0..n).map(|_| None).collect();
        let mut messages: Vec<Vec<RouteNetlinkMessage>> = (0..n).map(|_| Vec::new()).collect();
        let mut pending = n;
        while pending > 0 {
            self.buf.clear();
            match self.socket.recv(&mut self.buf, 0) {
                Ok(_) => {}
                // A signal landed on this thread before an answer did: the answer still comes.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let mut offset = 0;
            while offset < self.buf.len() {
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[offset..])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let len = msg.header.length as usize;
                if len == 0 {
                    break;
                }
                offset += (len + 3) & !3;
                // Anything not answering this batch (there is nothing else on a fresh,
                // unsubscribed socket) is skipped.
                let Some(i) = msg
                    .header
                    .sequence_number
                    .checked_sub(first)
                    .and_then(|i| usize::try_from(i).ok())
                    .filter(|&i| i < n)
                else {
                    continue;
                };
                match msg.payload {
                    NetlinkPayload::Error(e) if answers[i].is_none() => {
                        let result = if e.code.is_none() { Ok(()) } else { Err(e) };
                        answers[i] = Some(Answer {
                            messages: std::mem::take(&mut messages[i]),
                            result,
                        });
                        pending -= 1;
                    }
                    NetlinkPayload::InnerMessage(m) => messages[i].push(m),
                    _ => {}
                }
            }
        }
        Ok(answers.into_iter().flatten().collect())
    }
}
