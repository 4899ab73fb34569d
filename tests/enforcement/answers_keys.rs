//! Owners' answers for users whose keys are off, under the answers function's own role
//! (cdk/lib/answers.ts): what the role may turn back on (keys dormant turned off on a user whose
//! stage tag says so) it does; what it may not (a user whose stage tag was removed, a lone key's
//! own ladder) is recorded as answered and finished by the controller.

use aws_sdk_iam::types::StatusType;
use chrono::{DateTime, Duration, Utc};
use dormant::domain::answer::{AnswerAction, Claims};
use dormant::domain::{Principal, Stage, Subject};
use dormant::ports::Store;
use dormant::wiring::Assembly;

use super::answers::{post, AnswersFunction, OWNER};
use super::deployment::{admin_iam, enforcing, key_status, Deployment};

/// The narrow role still does a user's Undo after its keys were turned off: the keys dormant
/// turned off come back on (allowed by the marks dormant wrote), the marks come off.
#[tokio::test]
async fn an_owners_undo_turns_a_users_keys_back_on_under_the_answers_role() {
    owners_answer_for_a_user_whose_keys_are_off(AnswerAction::Undo, false).await;
}

/// Keep on a user whose keys dormant turned off: exempt, and the keys back on, all under the
/// answers role, the page saying "Done".
#[tokio::test]
async fn an_owners_keep_turns_a_users_keys_back_on_under_the_answers_role() {
    owners_answer_for_a_user_whose_keys_are_off(AnswerAction::Keep, false).await;
}

/// With the user's stage tag removed by hand, the release must first write the credentials
/// marker, which the answers role may not: the Undo fails, recorded, and the controller's next
/// run finishes it (docs/design.md, 'Answers').
#[tokio::test]
async fn an_undo_the_answers_role_cannot_finish_is_finished_by_the_controller() {
    owners_answer_for_a_user_whose_keys_are_off(AnswerAction::Undo, true).await;
}

/// The same for Keep: the exemption is written, the release fails for now, the page says so.
#[tokio::test]
async fn a_keep_whose_release_the_answers_role_cannot_finish_says_so_and_the_controller_finishes_it(
) {
    owners_answer_for_a_user_whose_keys_are_off(AnswerAction::Keep, true).await;
}

async fn owners_answer_for_a_user_whose_keys_are_off(
    action: AnswerAction,
    stage_tag_removed_by_hand: bool,
) {
    let d = Deployment::new().await;
    let unique_id = d.user(&d.member, "idle-user", 200).await;
    let now = Utc::now();
    let config = d.config("", "");
    let (live, later) = controller_turns_keys_off(&d, &config, now).await;
    let subject = Subject::whole(Principal::user(&d.member, "/", "idle-user"));
    let admin = admin_iam(&d.member).await;
    let status = || key_status(&admin, "idle-user", None);
    assert_eq!(status().await, Some(StatusType::Inactive));
    if stage_tag_removed_by_hand {
        admin
            .untag_user()
            .user_name("idle-user")
            .tag_keys("dormant:stage")
            .send()
            .await
            .unwrap();
    }

    let answers = AnswersFunction::new(&d, &config).await;
    let store = answers.factory.store();
    let record = store.load(&subject).await.unwrap().unwrap();
    assert_eq!(record.stage, Stage::KeysDeactivated, "{record:?}");
    let at = later + Duration::hours(1);
    let fields = match action {
        AnswerAction::Keep => "action=keep&reason=still+needed",
        _ => "action=undo",
    };
    let page = answer(&answers, action, &record, &unique_id, at, fields).await;
    if stage_tag_removed_by_hand {
        // The answer stands (the owner need not answer again); the change is left to the controller.
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.body.contains("Answer recorded"), "{}", page.body);
        assert!(page.body.contains("controller retries it"), "{}", page.body);
        assert_eq!(status().await, Some(StatusType::Inactive));
        let history = store.history(&subject).await.unwrap();
        let failed = history.last().unwrap();
        assert_eq!(
            failed.outcome,
            dormant::domain::Outcome::Failed,
            "{history:?}"
        );
        assert!(failed.reason.contains("AccessDenied"), "{}", failed.reason);
        // The controller's next run, once the failed attempt's retry is due, finishes it.
        let record = store.load(&subject).await.unwrap().unwrap();
        let due = record.next_due_at.expect("a retry is scheduled");
        live.fleet.tick(due + Duration::minutes(1)).await;
    } else {
        d.assert_nothing_refused("an owner's answer for a user (answers role)");
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.body.contains("Done"), "{}", page.body);
    }
    let expected = match action {
        AnswerAction::Keep => Stage::Exempt,
        _ => Stage::Released,
    };
    assert_eq!(store.load(&subject).await.unwrap().unwrap().stage, expected);
    assert_eq!(status().await, Some(StatusType::Active));
    let tags = admin
        .list_user_tags()
        .user_name("idle-user")
        .send()
        .await
        .unwrap();
    assert!(
        tags.tags()
            .iter()
            .all(|t| !t.key().starts_with("dormant:") || t.key().starts_with("dormant:exempt")),
        "{:?}",
        tags.tags()
    );
}

/// A lone unused key of a user who is in use has a ladder of its own, and the user no stage tag:
/// the answers role may not turn it back on (only the stage tag of a whole user allows that, and
/// the credentials marker does not). The owner's Undo is recorded and left to the controller,
/// which turns the key back on when the retry is due (docs/design.md, 'Answers').
#[tokio::test]
async fn an_owners_undo_of_a_lone_key_is_recorded_and_finished_by_the_controller() {
    let d = Deployment::new().await;
    let iam = admin_iam(&d.member).await;
    let user = iam
        .create_user()
        .user_name("two-keys")
        .send()
        .await
        .unwrap();
    let unique_id = user.user().unwrap().user_id().to_string();
    let now = Utc::now();
    let e = enforcing();
    e.backdate_user(&d.member, "two-keys", Some(now - Duration::days(300)), None);
    let mut keys = Vec::new();
    for last_used in [1, 200] {
        let key = iam
            .create_access_key()
            .user_name("two-keys")
            .send()
            .await
            .unwrap();
        let id = key.access_key().unwrap().access_key_id().to_string();
        let used = now - Duration::days(last_used);
        e.backdate_access_key(
            &d.member,
            "two-keys",
            &id,
            Some(now - Duration::days(300)),
            Some(used),
        );
        keys.push(id);
    }
    let (used_key, idle_key) = (keys[0].as_str(), keys[1].as_str());
    let status = |id| key_status(&iam, "two-keys", Some(id));
    let config = d.config("", "");
    let (live, later) = controller_turns_keys_off(&d, &config, now).await;
    assert_eq!(status(idle_key).await, Some(StatusType::Inactive));
    assert_eq!(status(used_key).await, Some(StatusType::Active));

    let principal = Principal::user(&d.member, "/", "two-keys");
    let whole = Subject::whole(principal.clone());
    let key_subject = Subject::access_key(principal, idle_key);
    let answers = AnswersFunction::new(&d, &config).await;
    let store = answers.factory.store();
    assert!(
        store
            .load(&whole)
            .await
            .unwrap()
            .is_none_or(|r| !r.stage.is_on_ladder()),
        "the user itself is in use"
    );
    let record = store.load(&key_subject).await.unwrap().unwrap();
    assert_eq!(record.stage, Stage::KeysDeactivated, "{record:?}");
    let at = later + Duration::hours(1);
    let page = answer(
        &answers,
        AnswerAction::Undo,
        &record,
        &unique_id,
        at,
        "action=undo",
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Answer recorded"), "{}", page.body);
    assert_eq!(status(idle_key).await, Some(StatusType::Inactive));
    let history = store.history(&key_subject).await.unwrap();
    let failed = history.last().unwrap();
    assert!(
        failed.reason.contains("AccessDenied") && failed.reason.contains("UpdateAccessKey"),
        "{failed:?}"
    );

    let record = store.load(&key_subject).await.unwrap().unwrap();
    let due = record.next_due_at.expect("a retry is scheduled");
    live.fleet.tick(due + Duration::minutes(1)).await;
    assert_eq!(status(idle_key).await, Some(StatusType::Active));
    assert_eq!(status(used_key).await, Some(StatusType::Active));
    assert_eq!(
        store.load(&key_subject).await.unwrap().unwrap().stage,
        Stage::Released
    );
}

/// The controller's notice, quarantine and key deactivation: a sweep at `now`, ticks 8 and 16
/// days later, nothing refused. Returns the controller and the last tick's time.
async fn controller_turns_keys_off(
    d: &Deployment,
    config: &dormant::config::Config,
    now: DateTime<Utc>,
) -> (Assembly, DateTime<Utc>) {
    let live = d.assembly(config).await;
    live.fleet.sweep(now).await;
    live.fleet.tick(now + Duration::days(8)).await;
    let later = now + Duration::days(16);
    live.fleet.tick(later).await;
    d.assert_nothing_refused("notice, quarantine, keys off (controller)");
    (live, later)
}

/// The owner's POST of `fields` at `at`, from a link to `action` issued when `record`'s subject
/// entered its stage, valid for a week.
async fn answer(
    answers: &AnswersFunction,
    action: AnswerAction,
    record: &dormant::domain::Record,
    unique_id: &str,
    at: DateTime<Utc>,
    fields: &str,
) -> dormant::app::answer::HttpResponse {
    let claims = Claims::issue(
        action,
        &record.subject,
        unique_id,
        record.stage,
        OWNER,
        at + Duration::days(7),
        record.stage_since.unwrap_or(at),
    );
    answers
        .handle(&post(&answers.sign(&claims), fields), at)
        .await
}
