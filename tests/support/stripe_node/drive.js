// A merchant's integration, written with stripe-node, against the simulator and crossfill's receiver.
//
// It points the simulator's webhook endpoint and thin event destination at a recorder of its own,
// which checks every delivery with stripe-node's parsers (constructEvent for snapshot events,
// parseEventNotification for thin ones, then fetchEvent and fetchRelatedObject) and forwards it,
// byte for byte, to crossfill's receiver. Then it builds a catalog, opens and pays sessions with and
// without the cross-sell, and lists with auto-pagination. Prints one JSON line: what it did and saw.
//
// Environment: SIM_URL, API_KEY, ENDPOINT_ID, DESTINATION_ID, WEBHOOK_SECRET, DESTINATION_SECRET,
// RECEIVER_URL, PRO, DEPLOY.
'use strict';

const http = require('http');
const Stripe = require('stripe');

const env = process.env;
const sim = new URL(env.SIM_URL);
const stripe = new Stripe(env.API_KEY, {
  host: sim.hostname, port: Number(sim.port), protocol: 'http', maxNetworkRetries: 0, telemetry: false,
});

const deliveries = [];
const failures = [];

async function record(body, signature) {
  const text = body.toString('utf8');
  const kind = JSON.parse(text).object === 'v2.core.event' ? 'thin' : 'snapshot';
  const seen = {kind, body: text, signature};
  try {
    if (kind === 'thin') {
      const notification = stripe.parseEventNotification(body, signature, env.DESTINATION_SECRET);
      seen.type = notification.type;
      seen.id = notification.id;
      const event = await notification.fetchEvent();
      if (event.id !== notification.id) throw new Error(`fetchEvent gave ${event.id}`);
      if (notification.related_object) {
        const related = await notification.fetchRelatedObject();
        seen.related = related.id;
      }
    } else {
      const event = stripe.webhooks.constructEvent(body, signature, env.WEBHOOK_SECRET);
      seen.type = event.type;
      seen.id = event.id;
      seen.related = event.data.object.id;
    }
  } catch (error) {
    failures.push(`${kind}: ${error.message}`);
  }
  const forwarded = await fetch(env.RECEIVER_URL, {
    method: 'POST', body, headers: {'Content-Type': 'application/json; charset=utf-8', 'Stripe-Signature': signature},
  });
  seen.receiver = forwarded.status;
  deliveries.push(seen);
  return forwarded.status;
}

function listen() {
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', async () => {
      let status = 500;
      try {
        status = await record(Buffer.concat(chunks), req.headers['stripe-signature'] || '');
      } catch (error) {
        failures.push(`recorder: ${error.message}`);
      }
      res.writeHead(status).end();
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

async function sim_post(path, form) {
  const response = await fetch(`${env.SIM_URL}${path}`, {
    method: 'POST', body: new URLSearchParams(form || {}),
    headers: {Authorization: `Bearer ${env.API_KEY}`},
  });
  if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
  return response.json();
}

async function price_for(product, amount, lookupKey) {
  try {
    await stripe.products.create({id: product, name: product});
  } catch (error) {
    if (error.code !== 'resource_already_exists') throw error;
  }
  const found = await stripe.prices.list({lookup_keys: [lookupKey]});
  if (found.data.length) return found.data[0].id;
  const price = await stripe.prices.create({
    product, currency: 'usd', unit_amount: amount, tax_behavior: 'exclusive', lookup_key: lookupKey,
  });
  return price.id;
}

async function main() {
  const server = await listen();
  const url = `http://127.0.0.1:${server.address().port}/hook`;
  await stripe.webhookEndpoints.update(env.ENDPOINT_ID, {url});
  const destination = await stripe.v2.core.eventDestinations.update(
    env.DESTINATION_ID, {webhook_endpoint: {url}, include: ['webhook_endpoint.url']});
  if (destination.webhook_endpoint.url !== url) throw new Error('the destination kept its old url');

  const pro = await price_for(env.PRO, 5000, 'node_pro');
  await price_for(env.DEPLOY, 1500, 'node_deploy');
  const extras = [];
  for (let n = 0; n < 11; n += 1) extras.push(await price_for(`prod_node_extra_${n}`, 700, `node_extra_${n}`));
  const byKey = await stripe.prices.list({lookup_keys: ['node_pro', 'node_deploy']});

  const sessions = [];
  for (const crossSell of [false, true]) {
    const items = [{price: pro, quantity: 1}, ...(crossSell ? extras : []).map((price) => ({price, quantity: 1}))];
    const session = await stripe.checkout.sessions.create({
      mode: 'payment', line_items: items, success_url: 'https://shop.example/done',
    });
    if (crossSell) await sim_post(`/sim/checkout/sessions/${session.id}/cross_sell`);
    await sim_post(`/sim/checkout/sessions/${session.id}/complete`, {outcome: 'paid', email: 'node@example.com'});
    sessions.push({id: session.id, cross_sell: crossSell, items: items.length + (crossSell ? 1 : 0)});
  }

  const lineItems = await stripe.checkout.sessions.listLineItems(sessions[1].id, {limit: 5})
    .autoPagingToArray({limit: 1000});
  const retrieved = await stripe.checkout.sessions.retrieve(sessions[1].id, {expand: ['line_items']});
  const products = await stripe.products.list({limit: 3}).autoPagingToArray({limit: 1000});
  const events = await stripe.events.list({types: ['checkout.session.completed'], limit: 1})
    .autoPagingToArray({limit: 1000});
  await sim_post('/sim/deliveries/wait', {timeout_s: '30'});
  const thinEvents = [];
  for await (const event of stripe.v2.core.events.list({types: ['v1.checkout.session.completed'], limit: 1})) {
    thinEvents.push(event.id);
  }
  const completed = await stripe.checkout.sessions.list({status: 'complete', limit: 1}).autoPagingToArray({limit: 1000});
  server.close();

  console.log(JSON.stringify({
    sessions, deliveries, failures,
    line_items: lineItems.map((item) => item.id),
    embedded_line_items: retrieved.line_items.data.length, embedded_has_more: retrieved.line_items.has_more,
    prices_by_lookup_key: byKey.data.map((price) => price.lookup_key).sort(),
    products: products.length, events: events.map((event) => event.id), thin_events: thinEvents,
    completed_sessions: completed.map((session) => session.id),
  }));
}

main().catch((error) => {
  console.error(error && error.stack ? error.stack : error);
  process.exit(1);
});
