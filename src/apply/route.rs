//! Which way an action goes on the target, decided before any target call
//! from what this process already knows: a pure function of the action's
//! kind, the folder hints (`Known`) and the mode, table-tested here so that
//! the shortcuts (an exclusive create in a fresh folder, a blind replace,
//! the skips) are rules that can be read and checked without clusters.

use crate::replicate::{Action, Change};

/// The kind of an action, as routing needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Upsert(Change),
    Delete,
    Rename,
}

impl Kind {
    pub fn of(a: &Action) -> Kind {
        match a {
            Action::Upsert { change, .. } => Kind::Upsert(*change),
            Action::Delete { .. } => Kind::Delete,
            Action::Rename { .. } => Kind::Rename,
        }
    }
}

/// What the folder hints say about where an action lands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Known {
    /// An upsert's target folder was made by this process (it holds only
    /// what this process wrote there).
    pub fresh_dir: bool,
    /// A delete's entry never reached the target (this process skipped its
    /// first version in a fresh folder).
    pub absent: bool,
    /// A rename's old entry is below a folder this process moved away: it
    /// went along with it.
    pub moved_along: bool,
    /// Entries that went along with a folder are the source's for this
    /// event (it is past the replay horizon).
    pub moves_trusted: bool,
    /// A delete's or a rename's old target entry is a version the source
    /// had replaced (not used for routing: the delete or the move weighs it).
    pub behind: bool,
}

/// The way an action goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Copy the chunks and create the entry exclusively, without a lookup.
    Create,
    /// Copy the chunks and write over whatever is there, without a lookup.
    Replace,
    /// Look at the target's entry, then write what differs (weighing the
    /// target's own version active-active).
    Upsert,
    /// Nothing to do: the entry never reached the target.
    SkipAbsent,
    /// Delete, unless the target's entry is a change the deleting side
    /// never saw (active-active: it wins over the delete).
    DeleteUnlessKept,
    Delete,
    /// Nothing to do: the entry went along with its folder, unchanged.
    SkipMovedAlong,
    /// Move the target's old entry when it is there, then make the new one
    /// exactly the source's.
    Move,
    /// The old entry is gone with its folder: make the new one exactly the
    /// source's.
    UpsertNew,
}

/// Routes an action of `kind` given what is `known`; `two_way` is
/// active-active (the target has writers of its own, so nothing about it
/// is taken on trust).
pub fn route(kind: Kind, known: Known, two_way: bool) -> Route {
    match kind {
        Kind::Upsert(Change::Created) if known.fresh_dir => Route::Create,
        Kind::Upsert(Change::Missing) => Route::Create,
        Kind::Upsert(Change::Rewritten) if !two_way => Route::Replace,
        Kind::Upsert(_) => Route::Upsert,
        Kind::Delete if two_way => Route::DeleteUnlessKept,
        Kind::Delete if known.absent => Route::SkipAbsent,
        Kind::Delete => Route::Delete,
        Kind::Rename if !known.moved_along => Route::Move,
        Kind::Rename if !two_way && known.moves_trusted => Route::SkipMovedAlong,
        Kind::Rename => Route::UpsertNew,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        use Change::*;
        let none = Known::default();
        let fresh = Known {
            fresh_dir: true,
            ..none
        };
        let absent = Known {
            absent: true,
            ..none
        };
        let along = Known {
            moved_along: true,
            ..none
        };
        let trusted = Known {
            moved_along: true,
            moves_trusted: true,
            ..none
        };
        let one_way = false;
        let two_way = true;
        #[rustfmt::skip]
        let table = [
            // A new entry in a fresh folder: nothing there to weigh, either way.
            (Kind::Upsert(Created), fresh, one_way, Route::Create),
            (Kind::Upsert(Created), fresh, two_way, Route::Create),
            (Kind::Upsert(Created), none, one_way, Route::Upsert),
            // Written anew: one-way, nothing to reuse or weigh.
            (Kind::Upsert(Rewritten), none, one_way, Route::Replace),
            (Kind::Upsert(Rewritten), fresh, one_way, Route::Replace),
            (Kind::Upsert(Rewritten), none, two_way, Route::Upsert),
            (Kind::Upsert(Changed), fresh, one_way, Route::Upsert),
            (Kind::Upsert(Changed), none, two_way, Route::Upsert),
            // A walk listed the target without it: an exclusive create, no
            // lookup (one that finds it there after all compares as usual).
            (Kind::Upsert(Missing), none, one_way, Route::Create),
            (Kind::Upsert(Missing), none, two_way, Route::Create),
            // Deletes: a skipped first version is known absent one-way only.
            (Kind::Delete, absent, one_way, Route::SkipAbsent),
            (Kind::Delete, none, one_way, Route::Delete),
            (Kind::Delete, absent, two_way, Route::DeleteUnlessKept),
            (Kind::Delete, none, two_way, Route::DeleteUnlessKept),
            // Renames below a folder this process moved.
            (Kind::Rename, none, one_way, Route::Move),
            (Kind::Rename, none, two_way, Route::Move),
            (Kind::Rename, trusted, one_way, Route::SkipMovedAlong),
            (Kind::Rename, along, one_way, Route::UpsertNew),
            (Kind::Rename, trusted, two_way, Route::UpsertNew),
        ];
        for (kind, known, two, want) in table {
            assert_eq!(
                route(kind, known, two),
                want,
                "{kind:?} {known:?} two-way {two}"
            );
        }
    }
}
