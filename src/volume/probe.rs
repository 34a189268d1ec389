//! The start-up check that a cluster's chunk servers speak what its
//! security file says (HTTPS with the right certificates, or plain HTTP):
//! one request, over the configured scheme, to each kind of server a run
//! will move bytes with. A definite mismatch (a certificate the CA does not
//! sign, a client certificate missing, HTTP against HTTPS or the reverse)
//! stops the run before anything is written, with what to fix; a server
//! that cannot be reached now is only a warning (transfers retry it).
//! Holds nothing; only reads.

use super::transfer::{Http, Server};
use crate::error::{ErrorKind, Result};
use crate::filer::FilerClient;

/// Sends one GET to a server of each kind in `servers` of the cluster that
/// `filer` serves: its volume server with the lowest volume id it knows
/// (none yet: nothing to check), every filer of the side. Any HTTP answer
/// passes, but that of an HTTPS server to a plain request.
pub fn probe(filer: &FilerClient, http: &Http, servers: &[Server]) -> Result<()> {
    let mut hosts = Vec::new();
    for &server in servers {
        match server {
            Server::Filer => hosts.extend(filer.addrs().iter().map(|a| (server, a.http()))),
            Server::Volume => match filer.some_volume_server() {
                Some(host) => hosts.push((server, host)),
                None => log::debug!("no volume yet to check the scheme of"),
            },
        }
    }
    for (server, host) in hosts {
        // A path that names nothing: the answer is small, whatever it is.
        let url = http.url(&host, "/.filer-sync-probe");
        match http.agent().get(&url).call() {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                let body = super::transfer::short_body(&mut resp);
                if let Some(e) = http.refusal(server, &host, status, &body) {
                    return Err(e);
                }
            }
            Err(e) => {
                let e = http.fail(server, &host, e);
                if e.kind() == ErrorKind::Usage {
                    return Err(e);
                }
                log::warn!("could not check {url} ({e}); going on");
            }
        }
    }
    Ok(())
}
