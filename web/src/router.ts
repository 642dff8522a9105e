import { createRouter, createWebHistory, type RouteRecordRaw } from "vue-router";
import { auth, loadSession } from "./auth";
import SignIn from "./views/SignIn.vue";

// meta.guest: only for signed-out visitors; meta.public: for anyone; else signed in.
const routes: RouteRecordRaw[] = [
  { path: "/auth/sign-in", component: SignIn, meta: { guest: true, title: "Sign in" } },
  {
    path: "/auth/sign-up",
    component: () => import("./views/SignUp.vue"),
    meta: { guest: true, title: "Create your account" },
  },
  {
    path: "/auth/forgot-password",
    component: () => import("./views/ForgotPassword.vue"),
    meta: { guest: true, title: "Reset your password" },
  },
  {
    path: "/auth/reset-password",
    component: () => import("./views/ResetPassword.vue"),
    meta: { public: true, title: "Choose a new password" },
  },
  {
    path: "/auth/verify-email",
    component: () => import("./views/VerifyEmail.vue"),
    meta: { public: true, title: "Verify your email" },
  },
  {
    path: "/invite/accept",
    component: () => import("./views/AcceptInvitation.vue"),
    meta: { public: true, title: "Invitation" },
  },
  {
    path: "/",
    component: () => import("./views/AppShell.vue"),
    children: [
      { path: "", redirect: "/contacts" },
      {
        path: "contacts",
        component: () => import("./views/ContactsView.vue"),
        meta: { title: "Contacts" },
      },
      {
        path: "contacts/import",
        component: () => import("./views/ImportView.vue"),
        meta: { title: "Import contacts" },
      },
      {
        path: "contacts/:contactId",
        component: () => import("./views/ContactView.vue"),
        meta: { title: "Contact" },
        props: true,
      },
      {
        path: "members",
        component: () => import("./views/MembersView.vue"),
        meta: { title: "Members" },
      },
      {
        path: "lists",
        component: () => import("./views/MailingListsView.vue"),
        meta: { title: "Mailing lists" },
      },
      {
        path: "lists/:listId",
        component: () => import("./views/MailingListView.vue"),
        meta: { title: "Mailing list" },
        props: true,
      },
      {
        path: "segments",
        component: () => import("./views/SegmentsView.vue"),
        meta: { title: "Segments" },
      },
      {
        path: "segments/:segmentId",
        component: () => import("./views/SegmentView.vue"),
        meta: { title: "Segment" },
        props: true,
      },
      {
        path: "properties",
        component: () => import("./views/PropertiesView.vue"),
        meta: { title: "Custom properties" },
      },
      {
        path: "suppression",
        component: () => import("./views/SuppressionView.vue"),
        meta: { title: "Suppression list" },
      },
      {
        path: "templates",
        component: () => import("./views/TemplatesView.vue"),
        meta: { title: "Templates" },
      },
      {
        path: "templates/:templateId",
        component: () => import("./views/TemplateView.vue"),
        meta: { title: "Template" },
        props: true,
      },
      {
        path: "saved-blocks",
        component: () => import("./views/SavedBlocksView.vue"),
        meta: { title: "Saved blocks" },
      },
      {
        path: "saved-blocks/:blockId",
        component: () => import("./views/SavedBlockView.vue"),
        meta: { title: "Saved block" },
        props: true,
      },
      {
        path: "campaigns",
        component: () => import("./views/CampaignsView.vue"),
        meta: { title: "Campaigns" },
      },
      {
        path: "campaigns/:campaignId",
        component: () => import("./views/CampaignView.vue"),
        meta: { title: "Campaign" },
        props: true,
      },
      {
        path: "transactional",
        component: () => import("./views/TransactionalView.vue"),
        meta: { title: "Transactional emails" },
      },
      {
        path: "transactional/:transactionalEmailId",
        component: () => import("./views/TransactionalEmailView.vue"),
        meta: { title: "Transactional email" },
        props: true,
      },
      // -- automations, webhooks, forms --
      {
        path: "automations",
        component: () => import("./views/AutomationsView.vue"),
        meta: { title: "Automations" },
      },
      {
        path: "automations/:automationId",
        component: () => import("./views/AutomationView.vue"),
        meta: { title: "Automation" },
        props: true,
      },
      {
        path: "webhooks",
        component: () => import("./views/WebhooksView.vue"),
        meta: { title: "Webhooks" },
      },
      {
        path: "webhooks/:webhookId",
        component: () => import("./views/WebhookView.vue"),
        meta: { title: "Webhook" },
        props: true,
      },
      {
        path: "forms",
        component: () => import("./views/FormsView.vue"),
        meta: { title: "Forms" },
      },
      {
        path: "forms/:formId",
        component: () => import("./views/FormView.vue"),
        meta: { title: "Form" },
        props: true,
      },
      // -- end of automations, webhooks, forms --
      {
        path: "domains",
        component: () => import("./views/DomainsView.vue"),
        meta: { title: "Sending domains" },
      },
      {
        path: "domains/:domainId",
        component: () => import("./views/DomainView.vue"),
        meta: { title: "Sending domain" },
        props: true,
      },
      {
        path: "providers",
        component: () => import("./views/ProvidersView.vue"),
        meta: { title: "Email providers" },
      },
      {
        path: "api-keys",
        component: () => import("./views/ApiKeysView.vue"),
        meta: { title: "API keys" },
      },
      {
        path: "settings",
        component: () => import("./views/SettingsView.vue"),
        meta: { title: "Settings" },
      },
      {
        path: "organizations/new",
        component: () => import("./views/CreateOrganization.vue"),
        meta: { title: "New organization" },
      },
    ],
  },
  {
    path: "/:unknown(.*)*",
    component: () => import("./views/NotFound.vue"),
    meta: { public: true, title: "Not found" },
  },
];

export const router = createRouter({ history: createWebHistory(), routes });

router.beforeEach(async (to) => {
  await loadSession();
  if (to.meta.guest && auth.user) return "/";
  if (!to.meta.guest && !to.meta.public && !auth.user) {
    return { path: "/auth/sign-in", query: to.fullPath === "/" ? {} : { redirect: to.fullPath } };
  }
  return true;
});

router.afterEach((to) => {
  document.title = to.meta.title ? `${to.meta.title as string} · Owlat` : "Owlat";
});

/** Where to go after signing in: the page that sent the visitor to sign in, if on this site. */
export function afterSignIn(redirect: unknown): string {
  return typeof redirect === "string" && redirect.startsWith("/") && !redirect.startsWith("//")
    ? redirect
    : "/";
}
