//! The deal board: a column per stage, a form per card to move the deal to
//! another stage (a plain POST), and a form for new deals.

use askama::Template;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::Deserialize;

use super::session::Viewer;
use super::{
    FieldErrors, UiError, UiResult, field, optional, optional_id, page, require, see_other,
};
use crate::AppState;
use crate::domain::{Currency, Date, DealStage, MinorUnits, Name};
use crate::error::ApiError;
use crate::http::Id;
use crate::sales::{self, Deal, DealInput};

/// Deals shown per stage on the board.
pub const PER_STAGE: i64 = 30;

/// Routes of the deal board.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/deals", get(board).post(create))
        .route("/ui/deals/new", get(new_deal))
        .route("/ui/deals/{id}/stage", post(move_stage))
}

/// One column of the board.
#[derive(Debug)]
pub struct Column {
    /// The stage.
    pub stage: &'static str,
    /// Its newest deals.
    pub deals: Vec<Card>,
}

/// A deal on the board, with its amount formatted.
#[derive(Debug)]
pub struct Card {
    /// The deal.
    pub d: Deal,
    /// `1,250.00`.
    pub amount: String,
}

#[derive(Template)]
#[template(path = "deals.html")]
struct Board<'a> {
    v: &'a Viewer,
    columns: Vec<Column>,
    stages: &'static [DealStage],
    notice: Option<&'a str>,
}

async fn board(State(st): State<AppState>, Extension(v): Extension<Viewer>) -> UiResult {
    show_board(&st, &v, None).await
}

async fn show_board(st: &AppState, v: &Viewer, notice: Option<&str>) -> UiResult {
    require(v.role().sees_deals())?;
    let deals = sales::board_rows(&mut *st.db.pool.acquire().await?, PER_STAGE).await?;
    let mut columns: Vec<Column> = DealStage::ALL
        .iter()
        .map(|s| Column {
            stage: s.as_str(),
            deals: Vec::new(),
        })
        .collect();
    for d in deals {
        if let Some(c) = columns.iter_mut().find(|c| c.stage == d.stage) {
            let amount = super::money(d.amount_minor);
            c.deals.push(Card { d, amount });
        }
    }
    let mut res = page(&Board {
        v,
        columns,
        stages: DealStage::ALL,
        notice,
    });
    if notice.is_some() {
        *res.status_mut() = StatusCode::CONFLICT;
    }
    Ok(res)
}

/// Where a card's form moves its deal.
#[derive(Debug, Deserialize)]
pub struct MoveForm {
    stage: String,
    version: i64,
}

async fn move_stage(
    State(st): State<AppState>,
    Extension(v): Extension<Viewer>,
    Id(id): Id,
    Form(f): Form<MoveForm>,
) -> UiResult {
    require(v.role().writes_deals())?;
    let stage =
        DealStage::parse(&f.stage).map_err(|m| UiError::BadRequest(format!("stage {m}")))?;
    let mut conn = st.db.pool.acquire().await?;
    let d = sales::get_deal_row(&mut conn, id).await?;
    let input = same_deal(&d, stage)?;
    match sales::update_deal_row(&mut conn, id, Some(f.version), input).await {
        Ok(_) => Ok(see_other("/ui/deals")),
        Err(ApiError::PreconditionFailed) => {
            let msg =
                "Someone changed that deal since the board was loaded; here it is as it is now.";
            show_board(&st, &v, Some(msg)).await
        }
        Err(e) => Err(e.into()),
    }
}

/// The deal as it is, in another stage.
fn same_deal(d: &Deal, stage: DealStage) -> UiResult<DealInput> {
    let stored = |e: String| UiError::Internal(ApiError::Internal(format!("stored deal: {e}")));
    Ok(DealInput {
        title: Name::parse(&d.title).map_err(stored)?,
        company_id: d.company_id,
        contact_id: d.contact_id,
        stage,
        amount_minor: MinorUnits::parse(d.amount_minor).map_err(stored)?,
        currency: Currency::parse(&d.currency).map_err(stored)?,
        expected_close: d
            .expected_close
            .as_deref()
            .map(Date::parse)
            .transpose()
            .map_err(stored)?,
        owner: Name::parse(&d.owner).map_err(stored)?,
    })
}

/// The new-deal form's fields as typed.
#[derive(Debug, Default, Deserialize)]
pub struct DealForm {
    #[serde(default)]
    title: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    currency: String,
    #[serde(default)]
    stage: String,
    #[serde(default)]
    owner: String,
    #[serde(default)]
    expected_close: String,
    #[serde(default)]
    company_id: String,
    #[serde(default)]
    contact_id: String,
}

/// `1234.5` or `1234.56` (major units, up to two decimals) in minor units.
pub fn parse_amount(s: &str) -> Result<MinorUnits, String> {
    let msg = || "must be an amount such as 1250 or 1250.50".to_string();
    let t = s.trim().replace(',', "");
    let (whole, frac) = t.split_once('.').unwrap_or((&t, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || whole.len() > 13 || frac.len() > 2 || !digits(whole) || !digits(frac) {
        return Err(msg());
    }
    let whole: i64 = whole.parse().map_err(|_| msg())?;
    let frac: i64 = format!("{frac:0<2}").parse().map_err(|_| msg())?;
    MinorUnits::parse(whole * 100 + frac)
}

impl DealForm {
    fn input(&self, errors: &mut FieldErrors) -> Option<DealInput> {
        let title = field(errors, "title", &self.title, Name::parse);
        let amount = field(errors, "amount", &self.amount, parse_amount);
        let currency = field(errors, "currency", self.currency.trim(), Currency::parse);
        let stage = field(errors, "stage", &self.stage, DealStage::parse);
        let owner = field(errors, "owner", &self.owner, Name::parse);
        let expected_close = optional(
            errors,
            "expected_close",
            self.expected_close.trim(),
            Date::parse,
        );
        let company_id = optional_id(errors, "company_id", &self.company_id);
        let contact_id = optional_id(errors, "contact_id", &self.contact_id);
        Some(DealInput {
            title: title?,
            company_id,
            contact_id,
            stage: stage?,
            amount_minor: amount?,
            currency: currency?,
            expected_close,
            owner: owner?,
        })
        .filter(|_| errors.is_empty())
    }
}

#[derive(Template)]
#[template(path = "deal_form.html")]
struct DealFormPage<'a> {
    v: &'a Viewer,
    f: &'a DealForm,
    errors: &'a FieldErrors,
    stages: &'static [DealStage],
}

async fn new_deal(Extension(v): Extension<Viewer>) -> UiResult {
    require(v.role().writes_deals())?;
    let f = DealForm {
        currency: "EUR".into(),
        stage: "lead".into(),
        owner: v.user.display_name.clone(),
        ..DealForm::default()
    };
    Ok(page(&DealFormPage {
        v: &v,
        f: &f,
        errors: &FieldErrors::new(),
        stages: DealStage::ALL,
    }))
}

async fn create(
    State(st): State<AppState>,
    Extension(v): Extension<Viewer>,
    Form(f): Form<DealForm>,
) -> UiResult {
    require(v.role().writes_deals())?;
    let mut errors = FieldErrors::new();
    if let Some(input) = f.input(&mut errors) {
        match sales::insert_deal(&mut *st.db.pool.acquire().await?, input).await {
            Ok(_) => return Ok(see_other("/ui/deals")),
            Err(ApiError::Validation { .. }) => {
                errors.insert("company_id", "the company or contact does not exist".into());
            }
            Err(e) => return Err(e.into()),
        }
    }
    let mut res = page(&DealFormPage {
        v: &v,
        f: &f,
        errors: &errors,
        stages: DealStage::ALL,
    });
    *res.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    Ok(res)
}
