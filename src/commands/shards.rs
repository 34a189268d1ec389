//! `sync --ha --shards N`: one link's work shared by every instance started
//! on it, on A's filer's own `DistributedLock`, with no coordinator. Each
//! instance holds one member slot lock ("LINK/member/J", the first free J
//! below N) so that all can count the live members K (a slot is probed by
//! asking for its lock: granted means free, and the probe gives it back at
//! once), and takes shard locks ("LINK/shard/I") up to its fair share of N
//! by its slot's rank (`shard::Plan`). Each held shard runs as a term of its
//! own (`Term` with `cfg.shard` set: its flows see only its paths, its
//! checkpoints are its own, shared on the target's KV as `--ha` shares
//! them, its windows fenced by the shard lock's numbered terms); the held
//! shards' flows share one stream per direction (`pipeline::hub`). An
//! instance over its share gives shards up at the end of a window (after
//! two looks in a row, see `shard::PATIENCE`); a dead instance's locks run
//! out after the TTL and the others take its shards. N is recorded on B's
//! KV on the first run; another N, or an `--ha` instance without shards on
//! the same link, is refused.

use super::ha::{adopt_shared, fence, link_name};
use super::term::{direction_stats, Term};
use super::Peers;
use crate::config::{Ha, SyncConfig};
use crate::error::{Error, ErrorKind, Result};
use crate::ha::Lease;
use crate::pipeline;
use crate::pipeline::hub::Hub;
use crate::retry::{retry, Cancel, Policy};
use crate::shard::{Look, Plan, Shard};
use crate::state::{HaRole, ShardSeen, State};
use crate::stats::Stats;
use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{Scope, ScopedJoinHandle};

/// Where a link's shard count is recorded, on B's KV.
fn count_key(link: &str) -> Vec<u8> {
    format!("filer-sync.shards.{link}").into_bytes()
}

fn slot_name(link: &str, j: u32) -> String {
    format!("{link}/member/{j}")
}

fn shard_name(link: &str, i: u32) -> String {
    format!("{link}/shard/{i}")
}

/// The shard count recorded for `link` (None: never run with shards).
fn recorded(peers: &Peers, link: &str, cancel: &Cancel) -> Result<Option<u32>> {
    let key = count_key(link);
    let raw = retry("KvGet", Policy::FOREVER, cancel, || peers.b.kv_get(&key))?;
    Ok(String::from_utf8_lossy(&raw).trim().parse().ok())
}

/// The shard count recorded for the pair's link in either mode (one way or
/// both ways; None: never run with shards).
pub(super) fn recorded_for_pair(
    peers: &Peers,
    a: (i32, &str),
    b: (i32, &str),
) -> Result<Option<u32>> {
    for two_way in [false, true] {
        let link = crate::ha::name_for(two_way, a, b);
        if let Some(n) = recorded(peers, &link, &Cancel::default())? {
            return Ok(Some(n));
        }
    }
    Ok(None)
}

/// `--ha` without `--shards`: refused on a link that runs with shards (the
/// two would apply the same paths at once).
pub(super) fn refuse_unsharded(peers: &Peers, link: &str, cancel: &Cancel) -> Result<()> {
    match recorded(peers, link, cancel)? {
        Some(n) => Err(Error::usage(format!(
            "--ha: the link {link:?} runs with --shards {n} (recorded on B's filer {}): start \
             this instance with --shards {n} too",
            peers.b.addr()
        ))),
        None => Ok(()),
    }
}

/// Records `n` for the link on its first sharded run; refuses another N,
/// and an instance without shards active on the link.
fn agree(peers: &Peers, link: &str, n: u32, cancel: &Cancel) -> Result<()> {
    match recorded(peers, link, cancel)? {
        Some(m) if m == n => {}
        Some(m) => {
            return Err(Error::usage(format!(
                "--shards {n}: the link {link:?} was first run with --shards {m} (recorded on B's \
                 filer {} under the KV key {:?}); start every instance with --shards {m}",
                peers.b.addr(),
                String::from_utf8_lossy(&count_key(link))
            )))
        }
        None => {
            let (key, value) = (count_key(link), n.to_string());
            retry("KvPut", Policy::FOREVER, cancel, || {
                peers.b.kv_put(&key, value.as_bytes())
            })?;
            log::info!("shards: the link {link:?} is recorded with {n} shards on B's filer");
        }
    }
    // An --ha instance without shards holds the link's own lock.
    let probe = Lease::new(
        peers.a.clone(),
        link.to_string(),
        format!("probe by {}", crate::ha::owner()),
        std::time::Duration::from_secs(2),
    );
    match retry("DistributedLock", Policy::SHORT, cancel, || {
        probe.try_acquire()
    })? {
        None => probe.give_back(log::Level::Debug),
        Some(holder) if !holder.starts_with("probe by ") => {
            return Err(Error::usage(format!(
                "--shards: an instance without --shards ({holder}) is active on the link \
                 {link:?}; stop it, or start it with --shards {n}"
            )))
        }
        Some(_) => {}
    }
    Ok(())
}

/// One shard this instance holds: its lock, the stop of its term, and the
/// thread that runs it.
struct Holding<'s> {
    lease: Arc<Lease>,
    stop: Cancel,
    thread: ScopedJoinHandle<'s, Result<bool>>,
    /// Asked to give the shard up (at the end of its window).
    stopping: bool,
}

/// What the whole instance shares with each look.
struct Link<'a> {
    cfgs: Vec<SyncConfig>,
    peers: &'a Peers,
    stats: Vec<Vec<Arc<Stats>>>,
    name: String,
    owner: String,
    ttl: std::time::Duration,
    n: u32,
    /// Each direction's one stream, shared by the shards held.
    hubs: Vec<Arc<Hub>>,
}

pub fn run(
    cfg: &SyncConfig,
    peers: &Peers,
    mut state: State,
    cancel: &Cancel,
    metrics: Option<TcpListener>,
    ha: &Ha,
    n: u32,
) -> Result<bool> {
    let stats: Vec<Arc<Stats>> = Vec::new();
    let name = link_name(
        &Term {
            cfg,
            peers,
            stats: &stats,
            hubs: &[],
        },
        ha,
    );
    agree(peers, &name, n, cancel)?;
    let per_shard = |i: u32| {
        let mut out = vec![(&cfg.a, &cfg.b)];
        if !cfg.active_passive {
            out.push((&cfg.b, &cfg.a));
        }
        out.into_iter()
            .map(|(src, dst)| {
                let mut s = direction_stats(src, dst);
                s.name = format!("{} shard {i}/{n}", s.name);
                s.shard = Some(i);
                s.ha_active.store(0, Ordering::Relaxed);
                Arc::new(s)
            })
            .collect()
    };
    let link = Link {
        cfgs: (0..n)
            .map(|index| SyncConfig {
                shard: Some(Shard { index, count: n }),
                ..cfg.clone()
            })
            .collect(),
        peers,
        stats: (0..n).map(per_shard).collect(),
        name,
        owner: crate::ha::owner(),
        ttl: ha.ttl,
        n,
        hubs: per_shard(0)
            .iter()
            .map(|s: &Arc<Stats>| Hub::new(s.name.split(' ').next().unwrap_or_default()))
            .collect(),
    };
    log::info!(
        "shards: link {:?} in {n} shards, locks on {} as {:?}, held for {} s without a renewal",
        link.name,
        peers.a.addr(),
        link.owner,
        ha.ttl.as_secs()
    );
    let all: Vec<Arc<Stats>> = link.stats.iter().flatten().cloned().collect();
    pipeline::alongside(metrics, &all, None, || {
        std::thread::scope(|s| coordinate(s, &link, &mut state, cancel))
    })
}

/// The member slot this instance holds, renewed on a thread of its own.
struct Member {
    slot: u32,
    lease: Arc<Lease>,
    done: Arc<AtomicBool>,
}

/// Looks at the locks every half TTL and takes or gives up shards, until a
/// stop is asked or a shard's term fails for good.
fn coordinate<'s>(
    s: &'s Scope<'s, '_>,
    link: &'s Link,
    state: &mut State,
    cancel: &Cancel,
) -> Result<bool> {
    let tick = link.ttl / 2;
    let mut member: Option<Member> = None;
    let mut held: BTreeMap<u32, Holding<'s>> = BTreeMap::new();
    let mut live: BTreeSet<u32> = BTreeSet::new();
    let mut over_for = 0;
    let mut looks = 0u64;
    let mut failed = None;
    let since = crate::util::now_ns();
    while !cancel.is_cancelled() {
        failed = failed.or_else(|| reap(&mut held));
        if failed.is_some() {
            break;
        }
        if member.as_ref().is_none_or(|m| !m.lease.valid()) {
            member = join(s, link, &mut live, cancel);
        }
        probe(link, member.as_ref().map(|m| m.slot), &mut live);
        let look = Look {
            shards: link.n,
            live_slots: live.iter().copied().collect(),
            own_slot: member.as_ref().map(|m| m.slot),
            held: held
                .iter()
                .filter(|(_, h)| !h.stopping)
                .map(|(i, _)| *i)
                .collect(),
            over_for,
        };
        let plan = Plan::decide(&look);
        over_for = if look.held.len() as u32 > plan.share {
            over_for + 1
        } else {
            0
        };
        for i in &plan.release {
            if let Some(h) = held.get_mut(i) {
                log::info!(
                    "shards: giving shard {i}/{} up (share {} of {} live members)",
                    link.n,
                    plan.share,
                    look.live_slots.len().max(1)
                );
                h.stopping = true;
                h.stop.cancel();
            }
        }
        let mut holding = look.held.len() as u32;
        for i in plan.try_take {
            if holding >= plan.share || cancel.is_cancelled() {
                break;
            }
            if let Some(h) = take(s, link, i, cancel) {
                held.insert(i, h);
                holding += 1;
            }
        }
        if looks.is_multiple_of(4) {
            survey(link, &held, state);
            let r = HaRole {
                lock_name: link.name.clone(),
                role: format!("member, {holding} of {} shards", link.n),
                owner: link.owner.clone(),
                holder: String::new(),
                generation: 0,
                since_ns: since,
                updated_ns: crate::util::now_ns(),
            };
            if let Err(e) = state.set_ha_role(&r) {
                log::warn!("shards: role not recorded in the state file: {e}");
            }
        }
        looks += 1;
        cancel.sleep(tick);
    }
    // Stopping: every shard's term ends (its window in flight is not
    // committed) and its lock is given back, so that others take it at once.
    for h in held.values() {
        h.stop.cancel();
    }
    for (_, h) in std::mem::take(&mut held) {
        if let Err(e) = h.thread.join().unwrap_or_else(|_| Err(panicked())) {
            if e.kind() != ErrorKind::Interrupted {
                failed.get_or_insert(e);
            }
        }
    }
    if let Some(m) = member {
        m.done.store(true, Ordering::SeqCst);
        m.lease.release();
    }
    survey(link, &held, state);
    match failed {
        Some(e) => Err(e),
        None => Ok(true),
    }
}

fn panicked() -> Error {
    Error::state("a shard's thread panicked")
}

/// Joins the shard terms that ended; the first failure for good (not a
/// lock lost, not a stop asked), if any.
fn reap(held: &mut BTreeMap<u32, Holding>) -> Option<Error> {
    let ended: Vec<u32> = held
        .iter()
        .filter(|(_, h)| h.thread.is_finished())
        .map(|(i, _)| *i)
        .collect();
    let mut failed = None;
    for i in ended {
        let h = held.remove(&i).expect("listed");
        match h.thread.join().unwrap_or_else(|_| Err(panicked())) {
            Err(e) if !(h.lease.was_lost() || h.stopping || e.kind() == ErrorKind::Interrupted) => {
                log::error!("shards: shard {i}: {e}");
                failed.get_or_insert(e);
            }
            Err(e) => log::warn!("shards: shard {i} ended: {e}"),
            Ok(_) => {}
        }
    }
    failed
}

/// Takes the first free member slot (None: all N are taken; this instance
/// then holds no shard until one frees).
fn join<'s>(
    s: &'s Scope<'s, '_>,
    link: &Link,
    live: &mut BTreeSet<u32>,
    cancel: &Cancel,
) -> Option<Member> {
    for j in 0..link.n {
        let lease = Arc::new(Lease::new(
            link.peers.a.clone(),
            slot_name(&link.name, j),
            link.owner.clone(),
            link.ttl,
        ));
        match lease.try_acquire() {
            Ok(None) => {
                log::info!("shards: member slot {j} of {}", link.n);
                live.insert(j);
                let (lost, done) = (cancel.child(), Arc::new(AtomicBool::new(false)));
                let (l, c, d) = (lease.clone(), lost.clone(), done.clone());
                s.spawn(move || l.keep(&c, &d));
                return Some(Member {
                    slot: j,
                    lease,
                    done,
                });
            }
            Ok(Some(_)) => {
                live.insert(j);
            }
            Err(e) => log::warn!("shards: member slot {j}: {e}"),
        }
    }
    log::warn!(
        "shards: all {} member slots are taken: more instances than shards; this one waits",
        link.n
    );
    None
}

/// Looks at every other member slot: held by an instance (live), or free
/// (granted to the probe, which gives it back at once). A slot that could
/// not be asked keeps what the last look said.
fn probe(link: &Link, own: Option<u32>, live: &mut BTreeSet<u32>) {
    for j in 0..link.n {
        if Some(j) == own {
            live.insert(j);
            continue;
        }
        let lease = Lease::new(
            link.peers.a.clone(),
            slot_name(&link.name, j),
            format!("probe by {}", link.owner),
            std::time::Duration::from_secs(2),
        );
        match lease.try_acquire() {
            Ok(None) => {
                lease.give_back(log::Level::Debug);
                live.remove(&j);
            }
            // Another instance's probe holds a free slot for a moment.
            Ok(Some(holder)) if holder.starts_with("probe by ") => {
                live.remove(&j);
            }
            Ok(Some(_)) => {
                live.insert(j);
            }
            Err(e) => log::debug!("shards: probing member slot {j}: {e}"),
        }
    }
}

/// Tries to take shard `i`; on success its term starts on a thread.
fn take<'s>(s: &'s Scope<'s, '_>, link: &'s Link, i: u32, cancel: &Cancel) -> Option<Holding<'s>> {
    let lease = Arc::new(Lease::new(
        link.peers.a.clone(),
        shard_name(&link.name, i),
        link.owner.clone(),
        link.ttl,
    ));
    match lease.try_acquire() {
        Ok(None) => {}
        Ok(Some(_)) => return None,
        Err(e) => {
            log::warn!("shards: shard {i}: {e}");
            return None;
        }
    }
    let stop = cancel.child();
    let (l, st) = (lease.clone(), stop.clone());
    let thread = std::thread::Builder::new()
        .name(format!("shard {i}"))
        .spawn_scoped(s, move || hold(link, i, &l, &st))
        .map_err(|e| log::error!("shards: spawn shard {i}: {e}"))
        .ok()?;
    Some(Holding {
        lease,
        stop,
        thread,
        stopping: false,
    })
}

/// Runs shard `i` while its lock holds and no stop is asked, then gives the
/// lock back.
fn hold(link: &Link, i: u32, lease: &Arc<Lease>, stop: &Cancel) -> Result<bool> {
    let (cfg, stats) = (&link.cfgs[i as usize], &link.stats[i as usize]);
    let term = Term {
        cfg,
        peers: link.peers,
        stats,
        hubs: &link.hubs,
    };
    let r = (|| {
        if !fence(&term, lease, stop)? {
            return Ok(true);
        }
        log::info!(
            "shards: holding shard {i}/{}, lock generation {}",
            link.n,
            lease.generation()
        );
        for s in stats {
            s.ha_active.store(1, Ordering::Relaxed);
        }
        let mut state = State::open(&cfg.state)?;
        adopt_shared(&term, &mut state, stop)?;
        term.run(&mut state, stop, None, Some(lease))
    })();
    for s in stats {
        s.ha_active.store(0, Ordering::Relaxed);
    }
    if lease.was_lost() {
        log::warn!("shards: shard {i}/{} lost", link.n);
    } else {
        lease.release();
        log::info!("shards: shard {i}/{} given back", link.n);
    }
    r
}

/// Records every shard as the lock filer and B's KV show it now, for
/// `status` (a failure only loses that).
fn survey(link: &Link, held: &BTreeMap<u32, Holding>, state: &mut State) {
    let now = crate::util::now_ns();
    let mut seen = Vec::new();
    for (i, cfg) in link.cfgs.iter().enumerate() {
        let i = i as u32;
        let owner = match held.get(&i) {
            Some(_) => link.owner.clone(),
            None => link
                .peers
                .a
                .lock_owner(&shard_name(&link.name, i))
                .ok()
                .flatten()
                .unwrap_or_default(),
        };
        for ((target, d), st) in super::term::directions(cfg, link.peers)
            .into_iter()
            .zip(&link.stats[i as usize])
        {
            let checkpoint_ns = target
                .kv_get(&d.shared_key())
                .ok()
                .and_then(|v| crate::state::reference::decode(&v))
                .unwrap_or(0);
            seen.push(ShardSeen {
                shard: Shard {
                    index: i,
                    count: link.n,
                },
                direction: st.name.split(' ').next().unwrap_or_default().to_string(),
                owner: owner.clone(),
                held: held.contains_key(&i),
                checkpoint_ns,
                updated_ns: now,
            });
        }
    }
    if let Err(e) = state.set_shards_seen(&seen) {
        log::warn!("shards: not recorded in the state file: {e}");
    }
}
